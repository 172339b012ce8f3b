package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/goburrow/modbus"
)

// Errors of the link, for classification with errors.Is.
var (
	errNotConnected = errors.New("not connected")
	errStopped      = errors.New("adapter is not running")
)

// transport is one connection to a device or bus, as goburrow provides it.
// It is used by the link's owner goroutine only.
type transport interface {
	open() error
	close() error
	// client returns a client addressing unit; it connects on first use.
	client(unit byte) modbus.Client
}

// newTransport builds the transport a config URL names. Only tcp:// is
// supported so far; rtu:// and rtu+tcp:// slot in here.
func newTransport(rawURL string, timeout time.Duration, log *slog.Logger) (transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "tcp":
		if u.Host == "" || u.Path != "" {
			return nil, fmt.Errorf("url %q: want tcp://host:port", rawURL)
		}
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "502")
		}
		h := modbus.NewTCPClientHandler(addr)
		h.Timeout = timeout // bounds the dial and each request
		h.IdleTimeout = 0   // the link decides when to close, not a timer
		if log.Enabled(context.Background(), slog.LevelDebug) {
			h.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug) // wire dumps
		}
		return &tcpTransport{h: h, c: modbus.NewClient(h)}, nil
	}
	return nil, fmt.Errorf("url %q: unsupported scheme %q (want tcp://host:port)", rawURL, u.Scheme)
}

// tcpTransport is Modbus TCP: the unit id travels in each frame's header.
type tcpTransport struct {
	h *modbus.TCPClientHandler
	c modbus.Client
}

func (t *tcpTransport) open() error  { return t.h.Connect() }
func (t *tcpTransport) close() error { return t.h.Close() }
func (t *tcpTransport) client(unit byte) modbus.Client {
	t.h.SlaveId = unit
	return t.c
}

// call is one request queued to the link's owner.
type call struct {
	unit byte
	fn   func(modbus.Client) error
	done chan error // buffered, so the owner never waits for the caller
}

// link executes requests one at a time on one transport, from the goroutine
// that start runs. goburrow never drops a connection after a fault: a dead
// socket fails every later request, and after a timeout the late answer is
// read as the next request's. So the link closes the transport on every
// fault other than a Modbus exception and reconnects with back-off. Several adapters may share one link when
// they talk to units on one bus.
type link struct {
	tr    transport
	log   *slog.Logger
	calls chan call

	mu      sync.Mutex
	stopped chan struct{} // closed while no goroutine serves calls

	// Owned by the serving goroutine.
	open    bool
	retryAt time.Time
	lastErr error
	backoff backoff
}

func newLink(tr transport, log *slog.Logger) *link {
	stopped := make(chan struct{})
	close(stopped)
	return &link{
		tr:      tr,
		log:     log,
		calls:   make(chan call),
		stopped: stopped,
		backoff: backoff{min: time.Second, max: 30 * time.Second},
	}
}

// start serves calls on a goroutine tracked by wg until ctx is done, then
// closes the transport. Calls are accepted from the moment start returns. It
// may be called again once that goroutine has ended, never twice at once.
func (l *link) start(ctx context.Context, wg *sync.WaitGroup) {
	stopped := make(chan struct{})
	l.mu.Lock()
	l.stopped = stopped
	l.mu.Unlock()
	wg.Go(func() {
		defer close(stopped)
		l.serve(ctx)
	})
}

func (l *link) serve(ctx context.Context) {
	defer func() {
		l.tr.close()
		l.open = false
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-l.calls:
			c.done <- l.exec(c)
		}
	}
}

// do queues fn behind at most the request in flight and waits for it. The
// transport's timeout bounds each request, ctx bounds the wait.
func (l *link) do(ctx context.Context, unit byte, fn func(modbus.Client) error) error {
	c := call{unit: unit, fn: fn, done: make(chan error, 1)}
	l.mu.Lock()
	stopped := l.stopped
	l.mu.Unlock()
	select {
	case l.calls <- c:
	case <-stopped:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *link) exec(c call) error {
	if !l.open {
		if time.Now().Before(l.retryAt) {
			return fmt.Errorf("%w: %w", errNotConnected, l.lastErr)
		}
		if err := l.tr.open(); err != nil {
			l.fault(err)
			return err
		}
		l.open = true
		if l.lastErr != nil {
			l.log.Info("modbus reconnected")
		}
	}
	err := l.call(c)
	var exc *modbus.ModbusError
	if err == nil || errors.As(err, &exc) { // the device answered
		l.backoff.reset()
		l.lastErr = nil
		return err
	}
	l.tr.close()
	l.open = false
	l.fault(err)
	return err
}

// call runs one request, turning a panic in the client library (a malformed
// answer it failed to check) into an error: the device must not bring the
// gateway down.
func (l *link) call(c call) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("modbus client panicked: %v", p)
		}
	}()
	return c.fn(l.tr.client(c.unit))
}

// fault schedules the next connection attempt after a transport error. The
// first fault of an outage is a warning, the retries only debug lines.
func (l *link) fault(err error) {
	level := slog.LevelDebug
	if l.lastErr == nil {
		level = slog.LevelWarn
	}
	l.lastErr = err
	wait := l.backoff.next()
	l.retryAt = time.Now().Add(wait)
	l.log.Log(context.Background(), level, "modbus connection fault", "err", err, "retry_in", wait.Round(time.Millisecond))
}

// backoff yields the delays between reconnection attempts: none for the
// first (a device closing an idle connection is no fault), then min doubling
// up to max, each with ±20 % jitter so gateways restarted together spread
// out.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(max(2*b.cur, b.min), b.max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (b *backoff) reset() { b.cur = 0 }
