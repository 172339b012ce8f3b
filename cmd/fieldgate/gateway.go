package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/internal/statefile"

	"github.com/fieldgate/fieldgate/internal/backoff"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/bridge"
	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/config"
)

const (
	// shutdownTimeout bounds the whole stop after the bridge's own ≤ 5 s
	// flush, so a wedged component can never keep the process alive.
	shutdownTimeout = 10 * time.Second
	// An adapter whose Run failed or panicked is restarted after a delay
	// growing from restartFirst to restartMax, so a bug that recurs at once
	// neither spins nor floods the log.
	restartFirst = 5 * time.Second
	restartMax   = 5 * time.Minute
)

// gateway wires adapters, the buffer and the bridge together and owns their
// goroutines.
type gateway struct {
	log    *slog.Logger
	level  *slog.LevelVar
	buf    *buffer.Buffer
	bridge *bridge.Bridge

	ctx       context.Context // parent of every adapter's context
	maxBuffer int64           // the buffer's size cap, for the metrics
	state     *statefile.Dir  // adapters' state files, beside the buffer; nil if it could not be created

	appendErrors  atomic.Uint64
	appendFailing atomic.Bool // the last Append failed: readings are being lost

	mu  sync.Mutex
	cfg *config.Config
	run map[string]*runningAdapter // by adapter name
}

// runningAdapter is one adapter goroutine and how to stop it.
type runningAdapter struct {
	spec   config.Adapter
	a      adapters.Adapter
	em     *emitter
	cancel context.CancelFunc
	done   chan struct{}
}

func runGateway(path string, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		printConfigError(stderr, err)
		return exitBadConfig
	}
	level := new(slog.LevelVar)
	level.Set(logLevel(cfg.Gateway.LogLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	fsync, err := buffer.ParseFsync(cfg.Buffer.Fsync)
	if err != nil {
		log.Error("buffer", "err", err)
		return exitBadConfig
	}
	buf, err := buffer.Open(cfg.Buffer.Dir, upstreamNames(cfg), buffer.Options{
		MaxSize:       int64(cfg.Buffer.MaxSize),
		Fsync:         fsync,
		FsyncInterval: cfg.Buffer.FsyncInterval.D(),
		Logger:        log.With("component", "buffer"),
	})
	if err != nil {
		log.Error("cannot open the buffer", "dir", cfg.Buffer.Dir, "err", err)
		return exitRuntime
	}

	// Adapters' state lives under the buffer's directory: the buffer's lock
	// keeps a second gateway away from it too. An adapter that cannot write
	// there reports it on its status; collection still starts.
	state, err := statefile.OpenDir(filepath.Join(cfg.Buffer.Dir, "state"))
	if err != nil {
		log.Error("cannot create the adapters' state directory", "err", err)
	}

	adCtx, stopAdapters := context.WithCancel(context.Background())
	defer stopAdapters()
	g := &gateway{log: log, level: level, buf: buf, ctx: adCtx, maxBuffer: int64(cfg.Buffer.MaxSize),
		state: state, cfg: cfg, run: map[string]*runningAdapter{}}
	g.bridge = bridge.New(cfg, buf, g, log.With("component", "bridge"))

	sigCtx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	brCtx, stopBridge := context.WithCancel(context.Background())
	defer stopBridge()
	bridgeDone := make(chan error, 1)
	go func() { bridgeDone <- g.bridge.Run(brCtx) }()

	specs := cfg.Adapters
	g.mu.Lock()
	for _, spec := range specs {
		g.start(spec)
	}
	g.mu.Unlock()
	log.Info("fieldgate started", "version", version, "gateway", cfg.Gateway.ID,
		"adapters", len(specs), "upstreams", len(cfg.Upstream))

	metricsCtx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	var metricsDone <-chan struct{}
	if addr := cfg.Gateway.MetricsListen; addr != "" {
		// Monitoring that cannot start must not stop data collection.
		if metricsDone, err = g.serveMetrics(metricsCtx, addr); err != nil {
			log.Error("metrics not served", "err", err)
		}
	}

	// systemd (Type=notify): ready now, and watchdog pings from this loop, so
	// a wedged gateway is restarted.
	notify(log, daemon.SdNotifyReady)
	var watchdog <-chan time.Time
	if every, _ := daemon.SdWatchdogEnabled(false); every > 0 {
		t := time.NewTicker(every / 2)
		defer t.Stop()
		watchdog = t.C
	}

	status := exitOK
loop:
	for {
		select {
		case <-sigCtx.Done():
			log.Info("stopping")
			break loop
		case <-hup:
			notify(log, daemon.SdNotifyReloading)
			g.reload(path)
			notify(log, daemon.SdNotifyReady)
		case <-watchdog:
			notify(log, daemon.SdNotifyWatchdog)
		case err := <-bridgeDone:
			log.Error("bridge stopped", "err", err)
			bridgeDone = nil
			status = exitRuntime
			break loop
		}
	}

	// Stop polling first so nothing new arrives, then let the bridge flush
	// what is in flight and say offline, then persist the buffer.
	notify(log, daemon.SdNotifyStopping)
	g.mu.Lock()
	for _, r := range g.run {
		r.cancel()
	}
	running := g.run
	g.mu.Unlock()
	deadline, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for name, r := range running {
		select {
		case <-r.done:
		case <-deadline.Done():
			log.Error("adapter did not stop in time", "adapter", name)
		}
	}
	stopBridge()
	if bridgeDone != nil {
		select {
		case <-bridgeDone:
		case <-deadline.Done():
			log.Error("bridge did not stop in time")
		}
	}
	stopMetrics()
	if metricsDone != nil {
		<-metricsDone // bounded by the server's shutdown timeout
	}
	if err := buf.Close(); err != nil {
		log.Error("closing the buffer", "err", err)
		status = exitRuntime
	}
	log.Info("stopped")
	return status
}

// start launches one adapter under supervision; g.mu must be held.
func (g *gateway) start(spec config.Adapter) {
	log := g.log.With("adapter", spec.Name)
	em := &emitter{name: spec.Name, g: g, log: log}
	a, err := adapters.New(spec, adapters.Env{Log: log, State: g.state})
	if err != nil {
		// Validation passed, so this is a fault the operator must see on
		// the status topic too; the other adapters carry on.
		log.Error("cannot create adapter", "err", err)
		em.Status(err)
		return
	}
	ctx, cancel := context.WithCancel(g.ctx)
	r := &runningAdapter{spec: spec, a: a, em: em, cancel: cancel, done: make(chan struct{})}
	g.run[spec.Name] = r
	go r.supervise(ctx)
}

// supervise runs the adapter until ctx ends, restarting it after a panic or
// an error return so one adapter's bug never takes the gateway down.
func (r *runningAdapter) supervise(ctx context.Context) {
	defer close(r.done)
	bo := backoff.New(restartFirst, restartMax)
	for {
		err := r.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("adapter stopped unexpectedly")
		}
		delay := bo.Next()
		r.em.log.Error("adapter failed; restarting", "err", err, "in", delay.Round(time.Second))
		r.em.Status(err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (r *runningAdapter) runOnce(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
			r.em.log.Error("adapter panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	return r.a.Run(ctx, r.em)
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
		r.cancel()
		stopping = append(stopping, r)
		delete(g.run, name)
	}
	g.mu.Unlock()
	deadline, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, r := range stopping {
		select {
		case <-r.done:
		case <-deadline.Done():
			// Its replacement retries the device until the old one lets go.
			g.log.Error("adapter did not stop in time; starting its replacement anyway", "adapter", r.spec.Name)
		}
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

// Command implements bridge.Commander: it routes a validated command to the
// adapter, and stores the read-back reading like any other.
func (g *gateway) Command(ctx context.Context, adapter, point string, v reading.Value) (reading.Value, error) {
	g.mu.Lock()
	r, ok := g.run[adapter]
	g.mu.Unlock()
	if !ok {
		return reading.Value{}, fmt.Errorf("adapter %q: %w", adapter, adapters.ErrNoPoint)
	}
	w, ok := r.a.(adapters.Writer)
	if !ok {
		return reading.Value{}, fmt.Errorf("adapter %q: %w", adapter, adapters.ErrNotWritable)
	}
	written, back, err := w.Write(ctx, point, v) // the bridge bounds ctx
	if err != nil {
		return reading.Value{}, err
	}
	r.em.Emit([]reading.Reading{back})
	return written, nil
}

// emitter stores one adapter's readings and forwards its status.
type emitter struct {
	name string
	g    *gateway
	log  *slog.Logger

	readings atomic.Uint64
	status   atomic.Pointer[string] // the fault; nil or "" when ok
}

// Emit implements adapters.Emitter.
func (e *emitter) Emit(rs []reading.Reading) {
	if len(rs) == 0 {
		return
	}
	if _, _, err := e.g.buf.Append(rs); err != nil {
		// Logged when appends start failing, not for every poll of a full disk;
		// the metrics count every one.
		e.g.appendErrors.Add(1)
		if !e.g.appendFailing.Swap(true) {
			e.log.Error("buffer append failed; readings are being lost", "readings", len(rs), "err", err)
		}
		return
	}
	if e.g.appendFailing.Swap(false) {
		e.log.Info("buffer appends work again")
	}
	e.readings.Add(uint64(len(rs)))
}

// Status implements adapters.Emitter; changes are logged.
func (e *emitter) Status(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	e.status.Store(&msg)
	if !e.g.bridge.SetStatus(e.name, err) {
		return
	}
	if err != nil {
		e.log.Warn("adapter fault", "err", err)
	} else {
		e.log.Info("adapter ok")
	}
}

// fault returns the adapter's current fault, "" when it is ok.
func (e *emitter) fault() string {
	if p := e.status.Load(); p != nil {
		return *p
	}
	return ""
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
