package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldgate/fieldgate/internal/backoff"
	"github.com/goburrow/modbus"

	"github.com/fieldgate/fieldgate/adapters/internal/serialport"
	"github.com/fieldgate/fieldgate/config"
)

// Errors of the link, for classification with errors.Is.
var (
	errNotConnected = errors.New("not connected")
	errStopped      = errors.New("adapter is not running")
)

// openError is a failure to open the transport: the device or bus cannot
// be reached at all, whichever unit is asked. Its text is the cause's.
type openError struct{ err error }

func (e *openError) Error() string { return e.err.Error() }
func (e *openError) Unwrap() error { return e.err }

// waitError is the failure of a request made while the link waits to
// reconnect (errNotConnected): its text is the last fault's, so a status
// does not change while nothing else did.
type waitError struct{ last error }

func (e *waitError) Error() string   { return e.last.Error() }
func (e *waitError) Unwrap() []error { return []error{errNotConnected, e.last} }

// withoutSource drops the local address from a socket's error: its port
// changes at every connection, and a fault must read the same each time it
// happens, so that a device that keeps failing changes its status once.
func withoutSource(err error) error {
	op, ok := err.(*net.OpError) // as goburrow returns them
	if !ok || op.Source == nil {
		return err
	}
	c := *op
	c.Source = nil
	return &c
}

// transport is one connection to a device or bus, as goburrow provides it,
// with its own reconnection policy. Only the owner goroutine of the link
// uses it.
type transport interface {
	// open connects. After it failed, the link does not call it again
	// before retryAt.
	open() error
	// retryAt is when open may be tried after a failure or a broken
	// connection; the zero time when it may be tried now.
	retryAt() time.Time
	// client returns a client addressing unit, whose requests time out
	// after timeout; log takes wire dumps at debug level. It is a
	// unitClient, which also sends requests goburrow has no method for.
	client(unit byte, timeout time.Duration, log *slog.Logger) modbus.Client
	// settle takes the outcome of each request and reports whether it
	// broke the connection, which the transport has then closed.
	settle(err error) (broken bool)
	// retry reports whether a request whose outcome broke the connection
	// is worth one more try on a new one.
	retry(err error) bool
	close() error
}

// endpoint is what an adapter's URL names: a key shared by every adapter on
// the same bus (empty for a connection of the adapter's own), the line
// settings a serial bus is opened with, and how to build its transport.
type endpoint struct {
	key  string
	line config.Line
	dial func(retry pace) transport
}

// newEndpoint parses a config URL. Socket transports reconnect with the
// back-off the adapter passes to dial; serial ports with serialport.Keeper's.
func newEndpoint(cfg *Config) (endpoint, error) {
	rawURL := cfg.URL
	u, err := url.Parse(rawURL)
	if err != nil {
		return endpoint{}, err
	}
	hostPort := func() (string, error) {
		if u.Host == "" || u.Path != "" {
			return "", fmt.Errorf("url %q: want %s://host:port", rawURL, u.Scheme)
		}
		if u.Port() == "" {
			return net.JoinHostPort(u.Hostname(), "502"), nil
		}
		return u.Host, nil
	}
	timeout, line := cfg.Timeout.D(), cfg.Line
	gap := serialport.FrameGap(line.BaudRate, line.DataBits, line.Parity, line.StopBits)
	switch u.Scheme {
	case "tcp":
		addr, err := hostPort()
		if err != nil {
			return endpoint{}, err
		}
		return endpoint{dial: func(retry pace) transport { return newTCPTransport(addr, timeout, retry) }}, nil
	case "rtu+tcp":
		addr, err := hostPort()
		if err != nil {
			return endpoint{}, err
		}
		// The line settings only set the inter-frame gap here: the first
		// adapter's apply, as the converter owns the serial line.
		return endpoint{key: "rtu+tcp://" + addr, dial: func(retry pace) transport {
			return newRTUTransport(&socketLine{addr: addr, timeout: timeout, redial: newRedial(retry)}, gap)
		}}, nil
	case "rtu":
		if u.Host != "" || u.Path == "" {
			return endpoint{}, fmt.Errorf("url %q: want rtu:///dev/ttyUSB0", rawURL)
		}
		if err := serialport.CheckLine(line); err != nil {
			return endpoint{}, err
		}
		path := filepath.Clean(u.Path)
		return endpoint{key: "rtu://" + path, line: line, dial: func(pace) transport {
			return newRTUTransport(serialLine{serialport.NewKeeper(path, line)}, gap)
		}}, nil
	}
	return endpoint{}, fmt.Errorf("url %q: unsupported scheme %q (want tcp://host:port, rtu:///dev/ttyUSB0 or rtu+tcp://host:port)", rawURL, u.Scheme)
}

// tcpTransport is Modbus TCP: the unit id travels in each frame's header.
// goburrow never drops a connection after a fault: a dead socket fails
// every later request, and after a timeout the late answer is read as the
// next request's. So every fault but a Modbus exception closes it.
type tcpTransport struct {
	h *modbus.TCPClientHandler
	c unitClient
	redial
}

func newTCPTransport(addr string, timeout time.Duration, retry pace) *tcpTransport {
	h := modbus.NewTCPClientHandler(addr)
	h.Timeout = timeout // bounds the dial and each request
	h.IdleTimeout = 0   // the link decides when to close, not a timer
	return &tcpTransport{h: h, c: unitClient{Client: modbus.NewClient(h), pk: h, tr: h}, redial: newRedial(retry)}
}

func (t *tcpTransport) open() error {
	if err := t.h.Connect(); err != nil {
		t.failed()
		return err
	}
	return nil
}

func (t *tcpTransport) close() error { return t.h.Close() }

func (t *tcpTransport) client(unit byte, timeout time.Duration, log *slog.Logger) modbus.Client {
	t.h.SlaveId, t.h.Timeout = unit, timeout
	t.h.Logger = nil
	if log.Enabled(context.Background(), slog.LevelDebug) {
		t.h.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug) // wire dumps
	}
	return t.c
}

// retry: a device that answers late, or closed an idle connection, costs
// its request one more try on a new connection, not the poll's block. The
// late answer goes with the old connection, never taken for the next one.
// Modbus writes set values, so a retried write writes the same.
func (t *tcpTransport) retry(error) bool { return true }

func (t *tcpTransport) settle(err error) bool {
	if err == nil || answered(err) {
		t.reset()
		return false
	}
	// Closing a connection that already failed may fail as well.
	_ = t.h.Close()
	t.failed()
	return true
}

// answered reports whether err is the device's own answer, a Modbus
// exception, which says the connection works.
func answered(err error) bool {
	_, ok := ExceptionCode(err)
	return ok
}

// pace is the span of a socket's reconnection back-off (see
// adapters.NewBackoff); tests shorten it.
type pace struct{ first, max time.Duration }

// defaultPace paces reconnection to a Modbus TCP device or an rtu+tcp
// converter.
var defaultPace = pace{first: time.Second, max: 30 * time.Second}

// redial paces the reconnection of a socket: at once after the first fault
// (a device closing an idle connection is no fault), then with back-off
// until a request settles fine.
type redial struct {
	backoff *backoff.Backoff
	failing bool // since the last request that settled fine
	at      time.Time
}

func newRedial(p pace) redial { return redial{backoff: backoff.New(p.first, p.max)} }

func (r *redial) failed()            { r.at = time.Now().Add(r.wait()) }
func (r *redial) retryAt() time.Time { return r.at }

// wait returns the delay before the next attempt to connect.
func (r *redial) wait() time.Duration {
	if !r.failing {
		r.failing = true
		return 0
	}
	return r.backoff.Next()
}

// reset notes that the connection works.
func (r *redial) reset() {
	r.failing = false
	r.backoff.Reset()
}

// call is one request queued on a link.
type call struct {
	m    *member
	unit byte
	fn   func(modbus.Client) error
	done chan error // buffered, so the owner never waits for the caller
}

// link executes requests one at a time on one transport, from one owner
// goroutine. It is a bus: every adapter talking through the same serial
// port or rtu+tcp address attaches to the same link (see registry), each
// as a member with its own queues. The owner takes one request per member
// in turn, round-robin, urgent ones (writes and their read-backs) before
// polls; so a command waits for at most the request in flight plus other
// members' commands, and a member that polls flat out gets no more of the
// bus than the others.
//
// The owner goroutine runs while the link has members: the first to
// attach starts it, the last to detach stops it and waits for it to end.
type link struct {
	reg   *registry
	key   string
	line  config.Line
	tr    transport
	after <-chan struct{} // a previous link on the same key; closed once it released the port
	wake  chan struct{}   // a request was queued; capacity 1
	stop  chan struct{}   // closed by the last member to detach
	done  chan struct{}   // closed when the owner goroutine has ended

	mu      sync.Mutex
	members []*member // in round-robin order
	next    int       // the member whose turn comes first

	// opens counts the connections made, so that an adapter notices a
	// reconnect (SunSpec discovers again).
	opens atomic.Uint64

	// Owned by the owner goroutine.
	open    bool
	lastErr error // why the transport is not open, until a request settles fine
}

// member is one adapter's place on a link.
type member struct {
	l       *link
	log     *slog.Logger
	timeout time.Duration

	// Guarded by l.mu.
	urgent, polls []*call
	gone          bool
}

// registry holds the shared links by key, so that adapters on one bus
// share one owner.
type registry struct {
	mu    sync.Mutex
	links map[string]*link
	gone  map[string]<-chan struct{} // done of the last link a key had
}

// buses is the process-wide registry of shared buses.
var buses = &registry{links: map[string]*link{}, gone: map[string]<-chan struct{}{}}

// attach joins the bus ep names, creating it (and its transport) unless a
// member is already attached, and starting its owner goroutine. The
// member's requests time out after timeout; socket transports back off
// with retry between reconnection attempts. Detach the member when done.
func (r *registry) attach(ep endpoint, log *slog.Logger, timeout time.Duration, retry pace) (*member, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.links[ep.key]
	switch {
	case l == nil:
		l = &link{
			reg: r, key: ep.key, line: ep.line, tr: ep.dial(retry), after: r.gone[ep.key],
			wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		}
		if ep.key != "" {
			r.links[ep.key] = l
			delete(r.gone, ep.key)
		}
		go l.serve()
	case l.line != ep.line:
		return nil, fmt.Errorf("bus %s is open with other line settings (%+v, not %+v)", ep.key, l.line, ep.line)
	}
	m := &member{l: l, log: log, timeout: timeout}
	l.mu.Lock()
	l.members = append(l.members, m)
	l.mu.Unlock()
	return m, nil
}

// detach leaves the bus: requests still queued fail with errStopped. The
// last member stops the owner goroutine and waits until it has closed the
// transport.
func (m *member) detach() {
	l, r := m.l, m.l.reg
	r.mu.Lock()
	l.mu.Lock()
	m.gone = true
	for _, c := range append(m.urgent, m.polls...) {
		c.done <- errStopped
	}
	m.urgent, m.polls = nil, nil
	for i, o := range l.members {
		if o == m {
			l.members = append(l.members[:i], l.members[i+1:]...)
			if i < l.next {
				l.next--
			}
			break
		}
	}
	if l.next >= len(l.members) {
		l.next = 0
	}
	last := len(l.members) == 0
	l.mu.Unlock()
	if last && l.key != "" {
		// A new link on this key waits for this one to release the port.
		delete(r.links, l.key)
		r.gone[l.key] = l.done
	}
	r.mu.Unlock()
	if last {
		close(l.stop)
		<-l.done
	}
}

// do queues fn as a request to unit and waits for its outcome. Urgent
// requests go before polls. The member's timeout bounds the request once
// it is on the wire; ctx bounds the wait, and a request still queued when
// ctx ends is withdrawn.
func (m *member) do(ctx context.Context, unit byte, urgent bool, fn func(modbus.Client) error) error {
	c := &call{m: m, unit: unit, fn: fn, done: make(chan error, 1)}
	l := m.l
	l.mu.Lock()
	if m.gone {
		l.mu.Unlock()
		return errStopped
	}
	q := &m.polls
	if urgent {
		q = &m.urgent
	}
	*q = append(*q, c)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		l.mu.Lock()
		m.urgent = withdraw(m.urgent, c)
		m.polls = withdraw(m.polls, c)
		l.mu.Unlock()
		return ctx.Err()
	}
}

func withdraw(q []*call, c *call) []*call {
	for i, o := range q {
		if o == c {
			return append(q[:i], q[i+1:]...)
		}
	}
	return q
}

// take dequeues the next request: the first urgent one in round-robin
// order from the member whose turn it is, else the first poll; nil when
// nothing waits. The turn passes to the member after the one served.
func (l *link) take() *call {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.members)
	for _, urgent := range [...]bool{true, false} {
		for i := range n {
			j := (l.next + i) % n
			m := l.members[j]
			q := &m.polls
			if urgent {
				q = &m.urgent
			}
			if len(*q) > 0 {
				c := (*q)[0]
				*q = (*q)[1:]
				l.next = (j + 1) % n
				return c
			}
		}
	}
	return nil
}

func (l *link) serve() {
	defer close(l.done)
	if l.after != nil {
		select {
		case <-l.after:
		case <-l.stop:
			return
		}
	}
	defer func() {
		// Closing a transport that already failed may fail as well.
		_ = l.tr.close()
	}()
	for {
		if c := l.take(); c != nil {
			c.done <- l.exec(c)
			continue
		}
		select {
		case <-l.wake:
		case <-l.stop:
			return
		}
	}
}

// exec runs a request; one the transport deems worth it is tried once more
// on a new connection when its outcome broke the first.
func (l *link) exec(c *call) error {
	broken, err := l.try(c)
	if broken && l.tr.retry(err) {
		c.m.log.Debug("modbus request tried again on a new connection", "err", err)
		_, err = l.try(c)
	}
	return err
}

// try runs a request once, opening the transport if it must, and reports
// whether the outcome broke the connection.
func (l *link) try(c *call) (broken bool, err error) {
	log := c.m.log
	if !l.open {
		if time.Now().Before(l.tr.retryAt()) {
			return false, &waitError{l.lastErr}
		}
		if err := l.tr.open(); err != nil {
			l.fault(log, err)
			return false, &openError{err}
		}
		l.open = true
		l.opens.Add(1)
		if l.lastErr != nil {
			log.Info("modbus reconnected")
		}
	}
	err = l.call(c)
	if l.tr.settle(err) {
		l.open = false
		l.fault(log, err)
		return true, err
	}
	l.lastErr = nil
	return false, err
}

// call runs one request, turning a panic in the client library (a malformed
// answer it failed to check) into an error: the device must not bring the
// gateway down.
func (l *link) call(c *call) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("modbus client panicked: %v", p)
		}
	}()
	return withoutSource(c.fn(l.tr.client(c.unit, c.m.timeout, c.m.log)))
}

// fault notes a connection fault. The first of an outage is a warning, the
// retries only debug lines.
func (l *link) fault(log *slog.Logger, err error) {
	level := slog.LevelDebug
	if l.lastErr == nil {
		level = slog.LevelWarn
	}
	l.lastErr = err
	log.Log(context.Background(), level, "modbus connection fault", "err", err,
		"retry_in", max(time.Until(l.tr.retryAt()), 0).Round(time.Millisecond))
}
