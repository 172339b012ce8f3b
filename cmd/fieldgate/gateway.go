package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/fieldgate/fieldgate/bridge"
	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/statefile"
	"github.com/fieldgate/fieldgate/internal/timerslack"
)

// options are the gateway's timings; tests shorten them.
type options struct {
	// Each part gets its own share of a stop, so a wedged adapter never
	// costs the bridge its drain or the buffer its flush: adapterStop
	// bounds stopping adapters (at shutdown, and at a reload), bridgeStop
	// the bridge's own bounded stop (≤ 5 s) with a margin.
	adapterStop, bridgeStop time.Duration
	// An adapter whose Run failed or panicked is restarted after a delay
	// growing from restartFirst to restartMax, so a bug that recurs at
	// once neither spins nor floods the log.
	restartFirst, restartMax time.Duration
}

var defaults = options{adapterStop: 3 * time.Second, bridgeStop: 6 * time.Second,
	restartFirst: 5 * time.Second, restartMax: 5 * time.Minute}

// gateway wires adapters, the buffer and the bridge together and owns their
// goroutines.
type gateway struct {
	opt    options
	log    *slog.Logger
	level  *slog.LevelVar
	buf    *buffer.Buffer
	bridge *bridge.Bridge

	ctx          context.Context // parent of every adapter's context
	stopAll      context.CancelFunc
	bridgeDone   chan error // Run's result, once the bridge stopped
	stopBridge   context.CancelFunc
	metricsDone  <-chan struct{} // nil when metrics are not served
	stopMetrics  context.CancelFunc
	maxBuffer    int64          // the buffer's size cap, for the metrics
	state        *statefile.Dir // adapters' state files, beside the buffer; nil if it could not be created
	bridgeFailed bool           // the bridge stopped on its own
	stuck        []string       // what made no progress at the last check; serve's

	appendErrors  atomic.Uint64
	appendFailing atomic.Bool // the last Append failed: readings are being lost

	mu  sync.Mutex
	cfg *config.Config
	run map[string]*runningAdapter // by adapter name
}

// runGateway runs the gateway configured in path until SIGINT or SIGTERM,
// reloading the file at SIGHUP, and returns the exit status.
func runGateway(path string, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		printConfigError(stderr, err)
		return exitBadConfig
	}
	// Signals are caught from before the start, so a stop requested while
	// the gateway starts is a clean stop too.
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g, status := open(cfg, stderr, defaults)
	if g == nil {
		return status
	}
	g.serve(sigCtx, hup, path)
	return g.shutdown()
}

// open starts a gateway for cfg, logging to stderr: the buffer, the
// bridge, every adapter and the metrics server. On failure it returns nil
// and the exit status.
func open(cfg *config.Config, stderr io.Writer, opt options) (*gateway, int) {
	level := new(slog.LevelVar)
	level.Set(logLevel(cfg.Gateway.LogLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	setTimerSlack(log, cfg.TimerSlack())

	fsync, err := buffer.ParseFsync(cfg.Buffer.Fsync)
	if err != nil {
		log.Error("buffer", "err", err)
		return nil, exitBadConfig
	}
	buf, err := buffer.Open(cfg.Buffer.Dir, upstreamNames(cfg), buffer.Options{
		MaxSize:       int64(cfg.Buffer.MaxSize),
		Fsync:         fsync,
		FsyncInterval: cfg.Buffer.FsyncInterval.D(),
		Logger:        log.With("component", "buffer"),
	})
	if err != nil {
		log.Error("cannot open the buffer", "dir", cfg.Buffer.Dir, "err", err)
		return nil, exitRuntime
	}

	// Adapters' state lives under the buffer's directory: the buffer's lock
	// keeps a second gateway away from it too. An adapter that cannot write
	// there reports it on its status; collection still starts.
	state, err := statefile.OpenDir(filepath.Join(cfg.Buffer.Dir, "state"))
	if err != nil {
		log.Error("cannot create the adapters' state directory", "err", err)
	}

	g := &gateway{opt: opt, log: log, level: level, buf: buf, maxBuffer: int64(cfg.Buffer.MaxSize),
		state: state, cfg: cfg, run: map[string]*runningAdapter{}, bridgeDone: make(chan error, 1)}
	g.ctx, g.stopAll = context.WithCancel(context.Background())
	g.bridge = bridge.New(cfg, buf, g, log.With("component", "bridge"), bridge.WithEdgeNode(version), bridge.WithState(state))
	var brCtx context.Context
	brCtx, g.stopBridge = context.WithCancel(context.Background())
	go func() { g.bridgeDone <- g.bridge.Run(brCtx) }()

	g.mu.Lock()
	for _, spec := range cfg.Adapters {
		g.start(spec)
	}
	g.mu.Unlock()
	log.Info("fieldgate started", "version", version, "gateway", cfg.Gateway.ID,
		"adapters", len(cfg.Adapters), "upstreams", len(cfg.Upstream))

	var metricsCtx context.Context
	metricsCtx, g.stopMetrics = context.WithCancel(context.Background())
	if addr := cfg.Gateway.MetricsListen; addr != "" {
		// Monitoring that cannot start must not stop data collection.
		if g.metricsDone, err = g.serveMetrics(metricsCtx, addr); err != nil {
			log.Error("metrics not served", "err", err)
		}
	}
	return g, exitOK
}

// progressEvery is how often serve checks that adapters and upstreams make
// progress, unless systemd's watchdog asks for more often. A stuck part
// is a rare fault, noticed at most this late; a shorter period would wake
// an otherwise idle gateway for nothing (docs/PERFORMANCE.md).
const progressEvery = 5 * time.Second

// serve runs until stop ends or the bridge fails, reloading path at each
// signal on reload.
func (g *gateway) serve(stop context.Context, reload <-chan os.Signal, path string) {
	g.releasePages()
	// systemd (Type=notify): ready now, then watchdog pings while every
	// adapter and upstream makes progress, so a wedged gateway is
	// restarted.
	notify(g.log, daemon.SdNotifyReady)
	every := progressEvery
	watchdog, _ := daemon.SdWatchdogEnabled(false)
	if watchdog > 0 {
		every = min(every, watchdog/2)
	}
	check := time.NewTicker(every)
	defer check.Stop()
	for {
		select {
		case <-stop.Done():
			g.log.Info("stopping")
			return
		case <-reload:
			notify(g.log, daemon.SdNotifyReloading)
			g.reload(path)
			g.releasePages()
			notify(g.log, daemon.SdNotifyReady)
		case now := <-check.C:
			if g.progressing(now) && watchdog > 0 {
				notify(g.log, daemon.SdNotifyWatchdog)
			}
		case err := <-g.bridgeDone:
			g.log.Error("bridge stopped", "err", err)
			g.bridgeFailed = true
			return
		}
	}
}

// setTimerSlack applies the timer slack Config.TimerSlack chooses
// (gateway.timer_slack) to every thread. The gateway's
// work comes in bursts (a poll, its append, its publish) during which the
// Go scheduler's monitor naps 20 µs at a time; with the kernel's 50 µs
// slack each nap is a thread wake-up of its own, about half of all the
// gateway's at 1,000 points a second (docs/PERFORMANCE.md).
func setTimerSlack(log *slog.Logger, d time.Duration) {
	err := timerslack.Set(d)
	switch {
	case err == nil:
	case errors.Is(err, errors.ErrUnsupported): // a build with cgo, or not Linux
		log.Debug("timer_slack not applied", "err", err)
	default:
		log.Warn("timer_slack not applied", "timer_slack", d, "err", err)
	}
}

// releasePages drops the code start-up or a reload ran and the
// running gateway does not (see releaseStartupPages); a failure costs only
// memory.
func (g *gateway) releasePages() {
	if err := releaseStartupPages(); err != nil {
		g.log.Debug("releasing start-up pages", "err", err)
	}
}

// progressing checks that every adapter and upstream shows progress (an
// adapter that stays silent past its pace is marked stalled) and reports
// whether all do; the watchdog is fed only then. A change is logged.
func (g *gateway) progressing(now time.Time) bool {
	g.mu.Lock()
	running := slices.Collect(maps.Values(g.run))
	g.mu.Unlock()
	var stuck []string
	for _, r := range running {
		if !r.progressing(now) {
			stuck = append(stuck, r.spec.Name)
		}
	}
	for _, u := range g.bridge.Stalled(now) {
		stuck = append(stuck, "upstream "+u)
	}
	slices.Sort(stuck)
	if was := g.stuck; !slices.Equal(was, stuck) {
		g.stuck = stuck
		if len(stuck) > 0 {
			g.log.Error("not feeding the watchdog: no progress from", "parts", stuck)
		} else {
			g.log.Info("every part makes progress again")
		}
	}
	return len(stuck) == 0
}

// shutdown stops polling first so nothing new arrives, then lets the bridge
// flush what is in flight and say offline, then persists the buffer. It
// returns the exit status.
func (g *gateway) shutdown() int {
	notify(g.log, daemon.SdNotifyStopping)
	status := exitOK
	if g.bridgeFailed {
		status = exitRuntime
	}
	g.mu.Lock()
	running := slices.Collect(maps.Values(g.run))
	g.mu.Unlock()
	for _, name := range g.stopAdapters(running, time.Now().Add(g.opt.adapterStop)) {
		g.log.Error("adapter did not stop in time; the rest stops without it", "adapter", name)
	}
	g.stopAll()
	g.stopBridge()
	if !g.bridgeFailed {
		t := time.NewTimer(g.opt.bridgeStop)
		select {
		case <-g.bridgeDone:
		case <-t.C:
			g.log.Error("bridge did not stop in time")
		}
		t.Stop()
	}
	g.stopMetrics()
	if g.metricsDone != nil {
		<-g.metricsDone // bounded by the server's shutdown timeout
	}
	if err := g.buf.Close(); err != nil {
		g.log.Error("closing the buffer", "err", err)
		status = exitRuntime
	}
	g.log.Info("stopped")
	return status
}

// stopAdapters stops rs and waits for them until deadline, and returns the
// names of those still running then. Shutdown and reload both stop
// adapters this way.
func (g *gateway) stopAdapters(rs []*runningAdapter, deadline time.Time) (stuck []string) {
	for _, r := range rs {
		r.cancel()
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for _, r := range rs {
		select {
		case <-r.done:
			continue
		case <-t.C:
		}
		// Past the deadline: collect what has not stopped.
		for _, r := range rs {
			select {
			case <-r.done:
			default:
				stuck = append(stuck, r.spec.Name)
			}
		}
		return stuck
	}
	return nil
}

// reload applies a new configuration file; on any error the running one stays.
func (g *gateway) reload(path string) {
	cfg, err := config.Load(path)
	if err != nil {
		g.log.Error("reload refused; keeping the running configuration", "err", err)
		return
	}
	g.mu.Lock()
	old := g.cfg
	g.mu.Unlock()
	if !reflect.DeepEqual(cfg.Buffer, old.Buffer) {
		g.log.Warn("buffer settings change at the next restart")
	}
	if cfg.Gateway.MetricsListen != old.Gateway.MetricsListen {
		g.log.Warn("metrics_listen changes at the next restart")
	}
	// The buffer learns of new upstreams before the bridge reads for them.
	if err := g.buf.SetUpstreams(upstreamNames(cfg)); err != nil {
		g.log.Error("reload refused; keeping the running configuration", "err", err)
		return
	}
	if err := g.bridge.Reload(cfg); err != nil {
		g.log.Error("reload refused; keeping the running configuration", "err", err)
		if err := g.buf.SetUpstreams(upstreamNames(old)); err != nil {
			g.log.Error("restoring the buffer's upstreams", "err", err)
		}
		return
	}
	g.level.Set(logLevel(cfg.Gateway.LogLevel))
	if slack := cfg.TimerSlack(); slack != old.TimerSlack() {
		setTimerSlack(g.log, slack)
	}

	want := map[string]config.Adapter{}
	for _, s := range cfg.Adapters {
		want[s.Name] = s
	}
	// Changed and removed adapters leave the table first, so commands to
	// them are refused at once rather than waiting for them to stop.
	var stopping []*runningAdapter
	g.mu.Lock()
	for name, r := range g.run {
		if s, ok := want[name]; ok && reflect.DeepEqual(s, r.spec) {
			delete(want, name) // unchanged: keeps running and keeps its connection
			continue
		}
		stopping = append(stopping, r)
		delete(g.run, name)
	}
	g.mu.Unlock()
	for _, name := range g.stopAdapters(stopping, time.Now().Add(g.opt.adapterStop)) {
		// Its replacement retries the device until the old one lets go.
		g.log.Error("adapter did not stop in time; starting its replacement anyway", "adapter", name)
	}
	g.mu.Lock()
	for _, s := range cfg.Adapters {
		if _, ok := want[s.Name]; ok {
			g.start(s)
		}
	}
	g.cfg = cfg
	n := len(g.run)
	g.mu.Unlock()
	g.log.Info("configuration reloaded", "adapters", n, "upstreams", len(cfg.Upstream))
}

// notify tells systemd the gateway's state; outside systemd it does nothing.
func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Debug("sd_notify", "state", state, "err", err)
	}
}

func upstreamNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Upstream))
	for i, u := range cfg.Upstream {
		names[i] = u.Name
	}
	return names
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo // config validation rejects anything else
	}
	return l
}
