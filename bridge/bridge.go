package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/statefile"
)

// Buffer is the part of the disk buffer the bridge reads; *buffer.Buffer
// implements it.
type Buffer interface {
	// Read returns up to max readings of upstream's stream from seq from on
	// (from the oldest kept if from was evicted).
	Read(upstream string, from uint64, max int) ([]buffer.Entry, error)
	// Cursor is the next seq upstream has not confirmed.
	Cursor(upstream string) uint64
	// Ack records that upstream has confirmed every seq below next.
	Ack(upstream string, next uint64) error
	// Changed is closed at the next Append.
	Changed() <-chan struct{}
	// Stats gives the seq the next reading gets and each upstream's
	// cursor: a Sparkplug upstream reports its backlog and tells
	// historical readings from live ones by them.
	Stats() buffer.Stats
}

// Bridge runs one publisher per upstream. Its methods are safe for
// concurrent use.
type Bridge struct {
	buf    Buffer
	cmd    Commander
	logger *slog.Logger
	status *statusBoard
	view   atomic.Pointer[view] // configured merged with announced
	latest *latest              // each point's last reading, for Sparkplug births
	// observing: some upstream speaks Sparkplug, the only user of latest,
	// which Observe keeps up to date meanwhile.
	observing atomic.Bool
	node      edgeNode
	state     *statefile.Dir // nil: bdSeq and announced points are kept in memory only

	viewMu     sync.Mutex              // orders the view's updates
	configured *view                   // the config's part of the view
	announced  map[string]announcement // by adapter, see SetPoints

	// reloadMu makes Reloads one at a time; mu is not held while the
	// upstreams a Reload replaces stop, which can take the stop budget,
	// so SetPoints, SetStatus and the metrics do not wait for them.
	reloadMu  sync.Mutex
	mu        sync.Mutex
	specs     []*settings
	cfgErr    error // the config New was given is unusable; Run reports it
	running   bool
	stopping  bool
	upstreams map[string]*upstream
	wg        sync.WaitGroup
	// discovered holds, per upstream, the Home Assistant discovery
	// topics its broker may hold (see discovery.held).
	discovered map[string]map[string]string
	// dropped counts, per upstream, the messages too large to read that
	// its connections dropped, across reloads.
	dropped map[string]*atomic.Uint64
}

// view is the gateway-wide part of the config that upstreams read live, so
// a reload changes it without reconnecting anyone. Its points are the
// config's and those adapters announced at run time (SetPoints).
type view struct {
	units     map[pointKey]string
	maxAge    time.Duration // command_max_age
	gatewayID string
	points    []reading.Point   // for Home Assistant discovery and Sparkplug births
	adapters  []string          // every adapter's name, in file order
	devices   map[string]string // each adapter's config summary, see announcement
}

// with returns v with the points announced for its adapters added after
// the config's, but those the config describes already.
func (v *view) with(announced map[string]announcement) *view {
	known := map[pointKey]bool{}
	for _, p := range v.points {
		known[pointKey{p.Adapter, p.Name}] = true
	}
	out := *v
	out.points = slices.Clip(v.points)
	for _, adapter := range v.adapters {
		for _, p := range announced[adapter].Points {
			if !known[pointKey{adapter, p.Name}] {
				out.points = append(out.points, p)
			}
		}
	}
	out.units = unitsOf(out.points)
	return &out
}

// Option adds to what New is given.
type Option func(*Bridge)

// edgeNode is what a Sparkplug upstream needs of the gateway beyond its
// config.
type edgeNode struct {
	version string
}

// WithEdgeNode gives Sparkplug upstreams the gateway's version, which
// their NBIRTH carries.
func WithEdgeNode(version string) Option {
	return func(b *Bridge) { b.node = edgeNode{version: version} }
}

// WithState gives the bridge the directory where it keeps what must
// survive a restart: each Sparkplug upstream's bdSeq, and the points
// adapters announced at run time. Without it both are kept in memory only.
func WithState(dir *statefile.Dir) Option {
	return func(b *Bridge) { b.state = dir }
}

// New prepares a bridge for cfg, which comes from config.Load: the bridge
// relies on its defaults and checks. Nothing connects before Run. cmd may be
// nil when no upstream takes commands: commands are then refused.
func New(cfg *config.Config, buf Buffer, cmd Commander, logger *slog.Logger, opts ...Option) *Bridge {
	if cmd == nil {
		cmd = noCommands{}
	}
	b := &Bridge{buf: buf, cmd: cmd, logger: logger, status: newStatusBoard(), latest: newLatest(), upstreams: map[string]*upstream{},
		discovered: map[string]map[string]string{}, dropped: map[string]*atomic.Uint64{}}
	for _, o := range opts {
		o(b)
	}
	specs, v, err := resolve(cfg)
	b.specs, b.cfgErr = specs, err
	b.observeFor(specs)
	b.announced = b.loadAnnounced(v)
	b.setView(v, "", nil)
	b.status.configure(v.adapters)
	return b
}

// setView stores a new view: the config's part v, or the current one if v
// is nil, with adapter's announcement replaced by ps unless adapter is "".
// A new config voids the announcements of adapters whose device it changed
// (see announcement).
func (b *Bridge) setView(v *view, adapter string, ps []reading.Point) {
	b.viewMu.Lock()
	defer b.viewMu.Unlock()
	if v != nil {
		b.configured = v
		maps.DeleteFunc(b.announced, func(a string, an announcement) bool { return an.Device != v.devices[a] })
	}
	if adapter == "" {
		b.view.Store(b.configured.with(b.announced))
		return
	}
	an := announcement{Device: b.configured.devices[adapter], Points: slices.Clone(ps)}
	if !an.equal(b.announced[adapter]) {
		b.saveAnnounced(adapter, an)
	}
	if len(ps) == 0 {
		delete(b.announced, adapter)
	} else {
		b.announced[adapter] = an
	}
	b.view.Store(b.configured.with(b.announced))
}

// SetPoints records the points adapter announced at run time (see
// adapters.Emitter's Describe), replacing its previous announcement; nil
// withdraws it. A reload that changes the adapter's device (its config
// summary) withdraws it too. They join the config's points in payloads' units, in Home
// Assistant discovery and in Sparkplug births, which every upstream brings
// up to date at once. Points the config describes already keep its
// description.
func (b *Bridge) SetPoints(adapter string, ps []reading.Point) {
	b.setView(nil, adapter, ps)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.upstreams {
		u.disco.resync()
		u.spb.resync()
	}
}

// resolve derives every upstream's settings; it fails without side effects.
func resolve(cfg *config.Config) ([]*settings, *view, error) {
	v := &view{maxAge: cfg.Gateway.CommandMaxAge.D(),
		gatewayID: cfg.Gateway.ID, points: cfg.Points(), devices: map[string]string{}}
	for _, a := range cfg.Adapters {
		v.adapters = append(v.adapters, a.Name)
		v.devices[a.Name] = a.Kind + " " + a.Config.Summary()
	}
	specs := make([]*settings, 0, len(cfg.Upstream))
	for _, u := range cfg.Upstream {
		s, err := newSettings(u)
		if err != nil {
			return nil, v, err
		}
		specs = append(specs, s)
	}
	return specs, v, nil
}

// Run publishes until ctx is done, then stops every upstream cleanly: in-flight
// publishes get a bounded time to be confirmed, `offline` is published, and
// the connections close, all within 5 s. It returns nil after a clean stop.
func (b *Bridge) Run(ctx context.Context) error {
	b.mu.Lock()
	switch {
	case b.running:
		b.mu.Unlock()
		return errors.New("bridge: Run called twice")
	case b.cfgErr != nil:
		b.mu.Unlock()
		return b.cfgErr
	}
	b.running = true
	for _, s := range b.specs {
		b.startLocked(s)
	}
	b.mu.Unlock()

	<-ctx.Done()
	b.mu.Lock()
	b.stopping = true
	us := make([]*upstream, 0, len(b.upstreams))
	for _, u := range b.upstreams {
		us = append(us, u)
	}
	b.mu.Unlock()
	stopAll(us)
	b.wg.Wait()
	return nil
}

// Reload applies a new configuration, from config.Load as for New. Upstreams
// whose settings did not change keep their connection (and publish the Home
// Assistant discovery configs the new points call for); changed and removed
// ones stop cleanly (as at shutdown), changed and added ones start. The TLS
// files are read again: an upstream whose files changed reconnects with
// them, unless they do not load (a rotation half done), when it keeps its
// connection and the old ones, with a warning. The buffer must already know
// the added upstreams (buffer.SetUpstreams first). An unusable config
// changes nothing and is reported.
func (b *Bridge) Reload(cfg *config.Config) error {
	specs, v, err := resolve(cfg)
	if err != nil {
		return err
	}
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	b.mu.Lock()
	b.setView(v, "", nil)
	b.status.configure(v.adapters)
	b.specs, b.cfgErr = specs, nil
	b.observeFor(specs)
	if !b.running || b.stopping {
		b.mu.Unlock()
		return nil
	}
	start := map[string]*settings{}
	for _, s := range specs {
		start[s.name] = s
	}
	var stop []*upstream
	for name, u := range b.upstreams {
		s, ok := start[name]
		if ok && !reflect.DeepEqual(s, u.s) && onlyTLSFilesDiffer(s, u.s) {
			if _, err := s.tlsConfig(); err != nil {
				u.logger.Warn("the TLS files changed but do not load; keeping the connection made with the old ones", "err", err)
				ok, s = true, u.s
			}
		}
		if ok && reflect.DeepEqual(s, u.s) {
			delete(start, name)
			u.disco.resync()
			u.spb.resync()
			continue
		}
		stop = append(stop, u)
		delete(b.upstreams, name)
	}
	b.mu.Unlock()
	stopAll(stop)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping { // Run stops what is running; nothing new starts
		return nil
	}
	for _, s := range specs {
		if start[s.name] != nil {
			b.startLocked(s)
		}
	}
	return nil
}

// onlyTLSFilesDiffer reports whether a and b differ in nothing but the
// contents of their TLS files.
func onlyTLSFilesDiffer(a, b *settings) bool {
	c := *a
	c.tlsFiles = b.tlsFiles
	return reflect.DeepEqual(&c, b)
}

// SetStatus records an adapter's health (nil: ok). A change is published,
// retained, on every connected upstream; all statuses are published again
// after each (re)connect. It never blocks on the network, and reports
// whether the status changed. Adapters not in the configuration have no
// status: Reload clears those of the adapters it removes, on every
// upstream, and ignores their later reports.
func (b *Bridge) SetStatus(adapter string, err error) (changed bool) {
	return b.status.set(adapter, err, time.Now())
}

// Observe records the latest value of each point: a Sparkplug birth
// carries each point's current value, which may be newer than what an
// upstream has delivered. The gateway calls it with every poll's readings;
// with no Sparkplug upstream it keeps nothing, so a reload that adds one
// births the points with the values polled from then on (null until then).
func (b *Bridge) Observe(rs []reading.Reading) {
	if b.observing.Load() {
		b.latest.observe(rs)
	}
}

// observeFor has Observe keep the latest readings while one of specs
// speaks Sparkplug, and forgets them otherwise.
func (b *Bridge) observeFor(specs []*settings) {
	on := slices.ContainsFunc(specs, func(s *settings) bool { return s.format == formatSparkplug })
	if !b.observing.Swap(on) || on {
		return
	}
	b.latest.forget()
}

// UpstreamState is one upstream's connection as the gateway's health check
// and metrics report it.
type UpstreamState struct {
	Name      string
	Connected bool
	// TakesCommands: the upstream subscribes to commands, on its own
	// link unless it has a clean session; CommandsConnected: that link
	// is up, so a command sent now reaches the gateway.
	TakesCommands, CommandsConnected bool
	// CommandsRefused counts the commands this upstream delivered that
	// were refused or failed.
	CommandsRefused uint64
	// Dropped counts the messages its broker sent that were too large to
	// read (larger than any command), since the gateway started.
	Dropped uint64
}

// Upstreams reports the running upstreams, sorted by name.
func (b *Bridge) Upstreams() []UpstreamState {
	b.mu.Lock()
	out := make([]UpstreamState, 0, len(b.upstreams))
	for name, u := range b.upstreams {
		st := UpstreamState{Name: name, Connected: u.conn.online.Load(), Dropped: b.dropped[name].Load()}
		if u.commands != nil {
			st.TakesCommands = true
			st.CommandsConnected = u.commands.conn.online.Load()
			st.CommandsRefused = u.commands.refused.Load()
		}
		out = append(out, st)
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stalled lists the upstreams whose goroutine has not shown progress when
// it promised to (see heartbeat), sorted: stuck, not merely disconnected,
// since dialling counts as progress.
func (b *Bridge) Stalled(now time.Time) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for name, u := range b.upstreams {
		if u.hb.late(now) || u.cmdLink != nil && u.cmdLink.hb.late(now) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// startLocked starts one upstream; b.mu must be held.
func (b *Bridge) startLocked(s *settings) {
	held := b.discovered[s.name]
	if held == nil {
		held = map[string]string{}
		b.discovered[s.name] = held
	}
	dropped := b.dropped[s.name]
	if dropped == nil {
		dropped = new(atomic.Uint64)
		b.dropped[s.name] = dropped
	}
	u := newUpstream(b, s, held, dropped)
	b.upstreams[s.name] = u
	b.wg.Go(u.run)
}

// stopAll asks every upstream to stop, then waits for all of them, so their
// bounded stops overlap.
func stopAll(us []*upstream) {
	for _, u := range us {
		u.stop()
	}
	for _, u := range us {
		<-u.done
	}
}

// noCommands stands in for a missing Commander.
type noCommands struct{}

func (noCommands) Command(_ context.Context, adapter, point string, _ reading.Value) (reading.Value, error) {
	return reading.Value{}, fmt.Errorf("%s/%s: %w: this gateway takes no commands", adapter, point, adapters.ErrNotWritable)
}
