package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/config"
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
}

// Bridge runs one publisher per upstream. Its methods are safe for
// concurrent use.
type Bridge struct {
	buf    Buffer
	cmd    Commander
	logger *slog.Logger
	status *statusBoard
	view   atomic.Pointer[view]

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
// a reload changes it without reconnecting anyone.
type view struct {
	units     map[pointKey]string
	maxAge    time.Duration // command_max_age
	gatewayID string
	points    []reading.Point // for Home Assistant discovery
}

// New prepares a bridge for cfg, which comes from config.Load: the bridge
// relies on its defaults and checks. Nothing connects before Run. cmd may be
// nil when no upstream takes commands: commands are then refused.
func New(cfg *config.Config, buf Buffer, cmd Commander, logger *slog.Logger) *Bridge {
	if cmd == nil {
		cmd = noCommands{}
	}
	b := &Bridge{buf: buf, cmd: cmd, logger: logger, status: newStatusBoard(), upstreams: map[string]*upstream{},
		discovered: map[string]map[string]string{}, dropped: map[string]*atomic.Uint64{}}
	specs, v, err := resolve(cfg)
	b.specs, b.cfgErr = specs, err
	b.view.Store(v)
	return b
}

// resolve derives every upstream's settings; it fails without side effects.
func resolve(cfg *config.Config) ([]*settings, *view, error) {
	v := &view{units: unitsOf(cfg.Points()), maxAge: cfg.Gateway.CommandMaxAge.D(),
		gatewayID: cfg.Gateway.ID, points: cfg.Points()}
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
	b.mu.Lock()
	defer b.mu.Unlock()
	b.view.Store(v)
	b.specs, b.cfgErr = specs, nil
	if !b.running || b.stopping {
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
			continue
		}
		stop = append(stop, u)
		delete(b.upstreams, name)
	}
	stopAll(stop)
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
// whether the status changed.
func (b *Bridge) SetStatus(adapter string, err error) (changed bool) {
	return b.status.set(adapter, err, time.Now())
}

// UpstreamState is one upstream's connection as the gateway's health check
// and metrics report it.
type UpstreamState struct {
	Name      string
	Connected bool
	// Dropped counts the messages its broker sent that were too large to
	// read (larger than any command), since the gateway started.
	Dropped uint64
}

// Upstreams reports the running upstreams, sorted by name.
func (b *Bridge) Upstreams() []UpstreamState {
	b.mu.Lock()
	out := make([]UpstreamState, 0, len(b.upstreams))
	for name, u := range b.upstreams {
		out = append(out, UpstreamState{Name: name, Connected: u.conn.online.Load(), Dropped: b.dropped[name].Load()})
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
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
