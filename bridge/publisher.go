package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fieldgate/fieldgate/buffer"
)

const (
	// maxInFlight bounds the messages awaiting confirmation, and so the
	// duplicates a reconnect may cause.
	maxInFlight = 128
	// maxInFlightQoS2 is the bound for QoS 2, lower because brokers bound
	// the QoS 2 messages a client may have half-delivered, and drop a client
	// that exceeds it: Mosquitto 2.0 allows max_inflight_messages, 20 by
	// default, even from MQTT 3.1.1 clients, which cannot be told so.
	maxInFlightQoS2 = 16
	// readRetry is the wait after a failed buffer read.
	readRetry = time.Second
	// readAhead is the least a buffer read asks for: reading a backlog in
	// steps of a window (16 messages at QoS 2) would decode each record
	// of the log many times over.
	readAhead = 1024
)

var errNotConnected = errors.New("not connected")

// publisher delivers one upstream's readings from the buffer, by the rules
// of the package doc: it reads from its position in seq order, keeps at
// most window messages in flight, moves the upstream's cursor in the
// buffer only past messages the broker confirmed, and after a loss of the
// link sorts out what must be sent again. It is owned by the upstream's
// goroutine.
type publisher struct {
	s      *settings
	logger *slog.Logger
	ctx    context.Context // the upstream's: ends at its stop
	hb     *heartbeat      // the upstream's
	buf    Buffer
	conn   *conn
	enc    encoder
	views  *atomic.Pointer[view] // the live config, for units
	// spb is the Sparkplug session (format sparkplug only), which has work
	// of its own between turns (wake) and may hold readings back.
	spb  *sparkplugSession
	wake <-chan struct{}

	window      int             // messages in flight at most
	next        uint64          // next seq to publish
	ahead       []buffer.Entry  // read from next on, not yet published
	aheadAt     <-chan struct{} // the buffer's Changed when ahead was read
	flights     []flight        // in flight, in seq order
	idle        <-chan struct{}
	retry       <-chan time.Time // set after a failed buffer read
	lastReadErr string
}

func newPublisher(u *upstream) *publisher {
	p := &publisher{s: u.s, logger: u.logger, ctx: u.ctx, hb: &u.hb, buf: u.b.buf, conn: u.conn, enc: u.encoder(),
		views: &u.b.view, window: maxInFlight}
	if u.spb != nil {
		p.spb, p.wake = u.spb, u.spb.wake
	}
	if u.s.qos == 2 {
		p.window = maxInFlightQoS2
	}
	return p
}

// flight is one message awaiting confirmation. Until a connection loss it is
// watched through its paho token; after one, if paho's session still holds
// it and will resend it, through the store, since the token is then
// meaningless (see the package doc).
type flight struct {
	first, last uint64
	tok         mqtt.Token
	stored      storeMark // when tok is nil
	// A QoS 0 message is confirmed once its link's writer has handed
	// upTo bytes to the socket, everything written when paho had written
	// it (coalesceconn.go).
	link *coalesceConn
	upTo uint64
}

func (f *flight) state(c *conn) (done bool, err error) {
	if f.tok == nil {
		return !c.store.holds(f.stored), nil
	}
	select {
	case <-f.tok.Done():
	default:
		return false, nil
	}
	if err := f.tok.Error(); err != nil || c.s.qos > 0 {
		return true, err
	}
	if f.link == nil {
		if f.link = c.link.Load(); f.link == nil {
			return true, nil // a message that was never written: nothing to wait for
		}
		f.upTo = f.link.queuedBytes()
	}
	done, err = f.link.flushedTo(f.upTo)
	return done || err != nil, err
}

// wait returns a channel closed when f may have completed; take it before
// checking state.
func (f *flight) wait(c *conn) <-chan struct{} {
	switch {
	case f.tok == nil:
		return c.store.wait()
	case f.link != nil:
		return f.link.flushWait()
	}
	return f.tok.Done()
}

// start takes the upstream's position in the buffer: its cursor.
func (p *publisher) start() { p.next = p.buf.Cursor(p.s.name) }

// pump publishes until the connection is lost or the upstream is stopped.
func (p *publisher) pump() error {
	if ls, ok := p.enc.(linkStarter); ok {
		ls.linkStarted()
	}
	// A timer restarted before each wait, not a ticker: a publisher with
	// readings every poll never needs its beat to wake it.
	alive := time.NewTimer(pumpBeat)
	defer alive.Stop()
	for {
		p.hb.beat(pumpBeat + handoffTimeout*time.Duration(p.window))
		if p.spb != nil {
			if err := p.spb.service(p.next); err != nil {
				return err
			}
		}
		var head <-chan struct{}
		if len(p.flights) > 0 {
			head = p.flights[0].wait(p.conn)
		}
		n, err := p.reap()
		if err != nil {
			return err
		}
		if err := p.fill(); err != nil {
			return err
		}
		if n > 0 || head == nil && len(p.flights) > 0 {
			continue // watch the new head
		}
		alive.Reset(pumpBeat)
		select {
		case <-p.ctx.Done():
			return p.ctx.Err()
		case err := <-p.conn.lost:
			if p.conn.isOpen() {
				continue // about a connection that is gone already
			}
			return err
		case <-head:
		case <-p.idle:
		case <-p.retry:
			p.retry = nil
		case <-p.wake:
		case <-alive.C:
		}
	}
}

// reap drops the confirmed messages at the head of the window and acks
// their seqs; it fails if the head message failed.
func (p *publisher) reap() (int, error) {
	n := 0
	var failed error
	for n < len(p.flights) {
		done, err := p.flights[n].state(p.conn)
		if !done {
			break
		}
		if err != nil {
			failed = fmt.Errorf("publish seq %d: %w", p.flights[n].first, err)
			break
		}
		n++
	}
	if n > 0 {
		// An upstream being removed by a reload may be gone from the
		// buffer already: there is nothing left to record.
		if err := p.buf.Ack(p.s.name, p.flights[n-1].last+1); err != nil && !errors.Is(err, buffer.ErrUnknownUpstream) {
			p.logger.Error("cannot record delivery in the buffer", "err", err)
		}
		p.flights = append(p.flights[:0], p.flights[n:]...)
	}
	return n, failed
}

// fill publishes from the buffer until the window is full or the buffer has
// nothing more.
func (p *publisher) fill() error {
	p.idle = nil
	if p.retry != nil {
		return nil
	}
	v := p.views.Load()
	for len(p.flights) < p.window {
		if len(p.ahead) == 0 || p.aheadStale() {
			changed := p.buf.Changed() // before Read, so no Append is missed
			es, err := p.buf.Read(p.s.name, p.next, max(p.enc.entries(p.window-len(p.flights)), readAhead))
			if err != nil {
				if err.Error() != p.lastReadErr && !errors.Is(err, buffer.ErrUnknownUpstream) {
					p.logger.Error("cannot read the buffer; retrying", "err", err)
				}
				p.lastReadErr = err.Error()
				p.retry = time.After(readRetry)
				return nil
			}
			p.lastReadErr = ""
			if len(es) == 0 {
				p.idle = changed
				return nil
			}
			p.ahead, p.aheadAt = es, changed
		}
		if err := p.ctx.Err(); err != nil {
			return err // stopping: on a link being torn down each Publish may block for handoffTimeout
		}
		if !p.conn.isOpen() {
			// paho is tearing the link down: a Publish now would wait
			// handoffTimeout for a writer that is gone.
			return errNotConnected
		}
		if p.spb != nil && !p.spb.admit(p.ahead[0]) {
			return nil // the session has to publish first; it wakes the pump
		}
		m, n := p.enc.encode(p.ahead, v)
		p.ahead = p.ahead[n:]
		var tok mqtt.Token = &mqtt.DummyToken{} // nothing the format can carry: done as it is
		if m.topic != "" {
			tok = p.conn.publish(m.topic, max(p.s.qos, m.minQoS), m.retain, m.payload)
		}
		p.flights = append(p.flights, flight{first: m.first, last: m.last, tok: tok})
		p.next = m.last + 1
		// A publish paho failed at once (its handoff timed out) ends the
		// window here, as a loss of the link: the next one handed over
		// would reach the broker before it.
		if done, err := p.flights[len(p.flights)-1].state(p.conn); done && err != nil {
			return fmt.Errorf("publish seq %d: %w", m.first, err)
		}
	}
	return nil
}

// aheadStale reports whether readings were appended since ahead was read
// while it holds less than one message carries: reading again fills the
// message (a batch, a DDATA) rather than sending what a read that came too
// early found, such as the readings held back until a Sparkplug host came.
func (p *publisher) aheadStale() bool {
	if len(p.ahead) >= p.enc.entries(1) {
		return false
	}
	select {
	case <-p.aheadAt:
		return true
	default:
		return false
	}
}

// afterLoss sorts the window once the connection is gone, before anything
// is resent (see the package doc): confirmed messages stay; messages paho
// holds for resending are watched in its store; from the first other one
// on, the buffer is read again.
func (p *publisher) afterLoss() {
	for i := range p.flights {
		f := &p.flights[i]
		if f.tok == nil {
			continue
		}
		done, err := f.state(p.conn)
		if done && err == nil {
			continue
		}
		// What paho's session store holds, paho resends after the
		// reconnect, even a message whose token failed (its send timed
		// out, or the loss came before it was written): it is watched
		// there, not read again, or it would go out twice.
		if p.s.qos > 0 && !p.s.clean {
			if pt, ok := f.tok.(*mqtt.PublishToken); ok && pt.MessageID() != 0 {
				key := "o." + strconv.Itoa(int(pt.MessageID())) // paho's key for an outbound packet
				if m, ok := p.conn.store.mark(key); ok {
					f.tok, f.stored = nil, m
					continue
				}
			}
		}
		p.logger.Debug("after the loss", "kept", i, "read_again_from", f.first, "dropped", len(p.flights)-i)
		p.next, p.ahead = f.first, nil
		p.flights = p.flights[:i]
		return
	}
}

// drain waits, until deadline, for what is in flight to be confirmed, while
// the link stays up.
func (p *publisher) drain(deadline time.Time) {
	for len(p.flights) > 0 && p.conn.isOpen() {
		head := p.flights[0].wait(p.conn)
		n, err := p.reap()
		if err != nil {
			return
		}
		if n > 0 {
			continue
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-head:
		case <-p.conn.lost:
		case <-t.C:
		}
		t.Stop()
	}
}
