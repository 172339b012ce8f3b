package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/internal/backoff"
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
	// maxRead bounds one buffer read in the batch format.
	maxRead = 4096

	connectTimeout = 10 * time.Second // per broker: dial, TLS and CONNACK
	writeTimeout   = 2 * time.Second  // one packet onto a stalled socket
	subackTimeout  = 10 * time.Second
	resultTimeout  = 5 * time.Second
	commandTimeout = 10 * time.Second
	commandQueue   = 16
	// stableAfter is how long a connection must have lasted for the next
	// reconnect to start the back-off afresh, so a flapping broker is not
	// hammered.
	stableAfter = 10 * time.Second

	// The stop budget, counted from the stop request: confirmations of what
	// is in flight are awaited until drainBudget, `offline` until
	// offlineBudget, then the DISCONNECT gets disconnectQuiesce.
	drainBudget       = 3 * time.Second
	offlineBudget     = 4500 * time.Millisecond
	disconnectQuiesce = 250 // milliseconds
)

// runner is one upstream: its paho client, its publisher and its command
// worker.
type runner struct {
	b      *Bridge
	s      *settings
	logger *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	stopAt atomic.Int64 // UnixNano of the stop request
	done   chan struct{}
	wg     sync.WaitGroup // command worker, result publisher, SUBACK watchers

	client  mqtt.Client
	store   *sessionStore
	disco   *discovery    // nil: no Home Assistant discovery
	lost    chan error    // connection losses, from paho
	kick    chan struct{} // adapter status changes
	jobs    chan job
	results chan result

	broker atomic.Pointer[string] // the broker being dialled, for the logs
	online atomic.Bool            // between connected and the end of that connection's pump

	// Publisher state, owned by the run goroutine.
	enc         *encoder
	window      int      // messages in flight at most
	next        uint64   // next seq to read
	flights     []flight // in flight, in seq order
	idle        <-chan struct{}
	retry       <-chan time.Time // set after a failed buffer read
	sent        map[string]uint64
	lastConnErr string
	lastReadErr string
}

// flight is one message awaiting confirmation. Until a connection loss it is
// watched through its paho token; after one, if paho's session still holds
// it and will resend it, through the store, since the token is then
// meaningless (see the package doc).
type flight struct {
	first, last uint64
	tok         mqtt.Token
	key         string
	pkt         packets.ControlPacket
}

func (f *flight) state(s *sessionStore) (done bool, err error) {
	if f.tok == nil {
		return !s.holds(f.key, f.pkt), nil
	}
	select {
	case <-f.tok.Done():
		return true, f.tok.Error()
	default:
		return false, nil
	}
}

// wait returns a channel closed when f may have completed; take it before
// checking state.
func (f *flight) wait(s *sessionStore) <-chan struct{} {
	if f.tok == nil {
		return s.wait()
	}
	return f.tok.Done()
}

type job struct {
	adapter, point string
	cmd            Command
	expires        time.Time // command_max_age after its ts, or after its arrival if sooner
}

var errNotConnected = errors.New("not connected")

func newRunner(b *Bridge, s *settings, discovered map[string]string) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{
		b: b, s: s, logger: b.logger.With("upstream", s.name),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		store:   newSessionStore(),
		lost:    make(chan error, 1),
		kick:    make(chan struct{}, 1),
		jobs:    make(chan job, commandQueue),
		results: make(chan result, 2*commandQueue),
		sent:    map[string]uint64{},
		window:  maxInFlight,
	}
	if s.qos == 2 {
		r.window = maxInFlightQoS2
	}
	r.disco = newDiscovery(r, discovered)
	b.status.watch(r.kick)
	return r
}

// stop asks the runner to stop; it then stops within the stop budget.
func (r *runner) stop() {
	r.stopAt.CompareAndSwap(0, time.Now().UnixNano())
	r.cancel()
}

func (r *runner) stopDeadline(budget time.Duration) time.Time {
	return time.Unix(0, r.stopAt.Load()).Add(budget)
}

func (r *runner) run() {
	defer close(r.done)
	defer r.b.status.unwatch(r.kick)
	defer r.wg.Wait()
	bo := backoff.New(time.Second, r.s.reconnectMax)
	tlsCfg, ok := r.loadTLS(bo)
	if !ok {
		return
	}
	r.client = mqtt.NewClient(r.options(tlsCfg))
	if r.s.commands {
		r.client.AddRoute(r.s.commandFilter(), r.onCommand)
		r.wg.Go(r.execute)
		r.wg.Go(r.publishResults)
	}
	if r.disco != nil {
		r.wg.Go(r.disco.run)
	}
	r.next = r.b.log.Cursor(r.s.name)
	r.enc = newEncoder(r.s, r.b.view.Load().units)
	for delay := time.Duration(0); r.connect(bo, delay); {
		up := time.Now()
		err := r.pump()
		r.online.Store(false)
		if r.ctx.Err() != nil {
			r.shutdown()
			return
		}
		r.logger.Warn("connection lost", "err", err, "in_flight", len(r.flights))
		if r.client.IsConnectionOpen() {
			r.client.Disconnect(disconnectQuiesce) // a publish failed on a live link: start afresh
		}
		r.afterLoss()
		if time.Since(up) >= stableAfter {
			bo.Reset()
			delay = 0
		} else {
			delay = bo.Next()
		}
	}
}

func (r *runner) options(tlsCfg *tls.Config) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	for _, b := range r.s.brokers {
		o.AddBroker(b.String())
	}
	o.SetClientID(r.s.clientID)
	o.SetUsername(r.s.username)
	o.SetPassword(string(r.s.password))
	o.SetCleanSession(r.s.clean)
	o.SetKeepAlive(r.s.keepalive)
	o.SetPingTimeout(min(r.s.keepalive, 10*time.Second))
	o.SetProtocolVersion(4)
	o.SetConnectTimeout(connectTimeout)
	o.SetDialer(&net.Dialer{Timeout: connectTimeout})
	o.SetWriteTimeout(writeTimeout)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false)
	o.SetStore(r.store)
	o.SetTLSConfig(tlsCfg)
	o.SetWill(r.s.statusTopic(), "offline", 1, true)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case r.lost <- err:
		default:
		}
	})
	o.SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
		if b, ok := n.(mqtt.ConnectionNotificationBroker); ok {
			s := b.Broker.Redacted()
			r.broker.Store(&s)
		}
	})
	return o
}

// loadTLS reads the certificate files, retrying with back-off while they are
// unusable.
func (r *runner) loadTLS(bo *backoff.Backoff) (*tls.Config, bool) {
	for {
		c, err := r.s.tlsConfig()
		if err == nil {
			if c != nil && c.InsecureSkipVerify {
				r.logger.Warn("TLS: insecure_skip_verify is set: the broker's certificate is not verified")
			}
			return c, true
		}
		r.logger.Error("cannot set up the connection", "err", err)
		if !r.sleep(bo.Next()) {
			return nil, false
		}
	}
}

// connect dials after delay until a broker accepts, with back-off between
// attempts; false means the runner was stopped.
func (r *runner) connect(bo *backoff.Backoff, delay time.Duration) bool {
	for ; ; delay = bo.Next() {
		if !r.sleep(delay) {
			return false
		}
		select {
		case <-r.lost: // a late report about the previous connection
		default:
		}
		tok := r.client.Connect()
		select {
		case <-tok.Done():
		case <-r.ctx.Done():
			r.abandon(tok)
			return false
		}
		if err := tok.Error(); err != nil {
			r.connectFailed(err)
			continue
		}
		r.connected(tok.(*mqtt.ConnectToken).SessionPresent())
		return true
	}
}

func (r *runner) brokerName() string {
	if s := r.broker.Load(); s != nil {
		return *s
	}
	return ""
}

func (r *runner) connectFailed(err error) {
	if c, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := c.Unwrap(); len(errs) == 2 {
			err = errs[1] // paho joins its return code's text with the cause
		}
	}
	level := slog.LevelWarn
	if isTLSError(err) {
		level, err = slog.LevelError, fmt.Errorf("TLS: %w", err)
	}
	if err.Error() == r.lastConnErr {
		level = slog.LevelDebug // the same failure again: said already
	}
	r.lastConnErr = err.Error()
	r.logger.Log(r.ctx, level, "cannot connect", "broker", r.brokerName(), "err", err)
}

// isTLSError reports whether a connection failed in the TLS handshake, so
// the log can say so plainly.
func isTLSError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		op       *net.OpError
	)
	return errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &unknown) ||
		errors.As(err, &hostname) || errors.As(err, &invalid) ||
		// crypto/tls reports an alert from the peer, such as a refused
		// client certificate, as this operation.
		errors.As(err, &op) && op.Op == "remote error"
}

// abandon ends a connection attempt overtaken by a stop: if it succeeds in
// time, the broker still hears `offline`.
func (r *runner) abandon(tok mqtt.Token) {
	if tok.WaitTimeout(time.Until(r.stopDeadline(drainBudget))) && tok.Error() == nil {
		r.shutdown()
		return
	}
	r.client.Disconnect(0)
}

// connected runs at each new connection: birth message, command
// subscription, every adapter status, Home Assistant discovery.
func (r *runner) connected(sessionPresent bool) {
	r.online.Store(true)
	r.lastConnErr = ""
	r.logger.Info("connected", "broker", r.brokerName(), "session_present", sessionPresent,
		"backlog_from", r.next, "resending", len(r.flights))
	r.client.Publish(r.s.statusTopic(), 1, true, "online")
	if r.s.commands {
		tok := r.client.Subscribe(r.s.commandFilter(), 1, nil)
		r.wg.Go(func() { r.checkSuback(tok.(*mqtt.SubscribeToken)) })
	}
	clear(r.sent)
	r.publishStatuses()
	r.disco.connected()
}

func (r *runner) checkSuback(tok *mqtt.SubscribeToken) {
	t := time.NewTimer(subackTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-t.C:
		r.logger.Warn("no answer to the command subscription", "topic", r.s.commandFilter())
		return
	case <-r.ctx.Done():
		return
	}
	if err := tok.Error(); err != nil {
		r.logger.Warn("command subscription failed", "topic", r.s.commandFilter(), "err", err)
		return
	}
	if q := tok.Result()[r.s.commandFilter()]; q > 2 {
		r.logger.Warn("the broker refused the command subscription", "topic", r.s.commandFilter())
		return
	}
	r.logger.Debug("subscribed to commands", "topic", r.s.commandFilter())
}

func (r *runner) publishStatuses() {
	r.b.status.newer(r.sent, func(adapter string, payload []byte) {
		r.client.Publish(r.s.adapterStatusTopic(adapter), 1, true, payload)
	})
}

// pump publishes until the connection is lost or the runner is stopped.
func (r *runner) pump() error {
	for {
		var head <-chan struct{}
		if len(r.flights) > 0 {
			head = r.flights[0].wait(r.store)
		}
		n, err := r.reap()
		if err != nil {
			return err
		}
		if err := r.fill(); err != nil {
			return err
		}
		if n > 0 || head == nil && len(r.flights) > 0 {
			continue // watch the new head
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case err := <-r.lost:
			if r.client.IsConnectionOpen() {
				continue // about a connection that is gone already
			}
			return err
		case <-r.kick:
			r.publishStatuses()
		case <-head:
		case <-r.idle:
		case <-r.retry:
			r.retry = nil
		}
	}
}

// reap drops the confirmed messages at the head of the window and acks
// their seqs; it fails if the head message failed.
func (r *runner) reap() (int, error) {
	n := 0
	var failed error
	for n < len(r.flights) {
		done, err := r.flights[n].state(r.store)
		if !done {
			break
		}
		if err != nil {
			failed = fmt.Errorf("publish seq %d: %w", r.flights[n].first, err)
			break
		}
		n++
	}
	if n > 0 {
		// An upstream being removed by a reload may be gone from the
		// buffer already: there is nothing left to record.
		if err := r.b.log.Ack(r.s.name, r.flights[n-1].last+1); err != nil && !errors.Is(err, buffer.ErrUnknownUpstream) {
			r.logger.Error("cannot record delivery in the buffer", "err", err)
		}
		r.flights = append(r.flights[:0], r.flights[n:]...)
	}
	return n, failed
}

// fill publishes from the buffer until the window is full or the buffer has
// nothing more.
func (r *runner) fill() error {
	r.idle = nil
	if r.retry != nil {
		return nil
	}
	r.enc.units = r.b.view.Load().units
	for len(r.flights) < r.window {
		if !r.client.IsConnectionOpen() {
			return errNotConnected
		}
		changed := r.b.log.Changed() // before Read, so no Append is missed
		room := r.window - len(r.flights)
		if r.s.format == formatBatch {
			room = min(room*r.s.batchMax, maxRead)
		}
		es, err := r.b.log.Read(r.s.name, r.next, room)
		if err != nil {
			if err.Error() != r.lastReadErr && !errors.Is(err, buffer.ErrUnknownUpstream) {
				r.logger.Error("cannot read the buffer; retrying", "err", err)
			}
			r.lastReadErr = err.Error()
			r.retry = time.After(time.Second)
			return nil
		}
		r.lastReadErr = ""
		if len(es) == 0 {
			r.idle = changed
			return nil
		}
		for len(es) > 0 && len(r.flights) < r.window {
			if err := r.ctx.Err(); err != nil {
				return err // stopping: on a stalled link each Publish may block for writeTimeout
			}
			m, n := r.enc.next(es)
			es = es[n:]
			tok := r.client.Publish(m.topic, r.s.qos, m.retain, m.payload)
			r.flights = append(r.flights, flight{first: m.first, last: m.last, tok: tok})
			r.next = m.last + 1
		}
	}
	return nil
}

// afterLoss sorts the window once the connection is gone, before anything
// is resent (see the package doc): confirmed messages stay; messages paho
// holds for resending are watched in its store; from the first other one
// on, the buffer is read again.
func (r *runner) afterLoss() {
	for i := range r.flights {
		f := &r.flights[i]
		if f.tok == nil {
			continue
		}
		done, err := f.state(r.store)
		if done && err == nil {
			continue
		}
		if !done && r.s.qos > 0 && !r.s.clean {
			if pt, ok := f.tok.(*mqtt.PublishToken); ok && pt.MessageID() != 0 {
				key := "o." + strconv.Itoa(int(pt.MessageID())) // paho's key for an outbound packet
				if p := r.store.Get(key); p != nil {
					f.tok, f.key, f.pkt = nil, key, p
					continue
				}
			}
		}
		r.logger.Debug("after the loss", "kept", i, "read_again_from", f.first, "dropped", len(r.flights)-i)
		r.next = f.first
		r.flights = r.flights[:i]
		return
	}
}

// shutdown ends a stopped runner's connection: it waits, within the stop
// budget, for what is in flight to be confirmed, then says `offline`.
func (r *runner) shutdown() {
	drainEnd := r.stopDeadline(drainBudget)
	for len(r.flights) > 0 && r.client.IsConnectionOpen() {
		head := r.flights[0].wait(r.store)
		n, err := r.reap()
		if err != nil {
			break
		}
		if n > 0 {
			continue
		}
		wait := time.Until(drainEnd)
		if wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-head:
		case <-r.lost:
		case <-t.C:
		}
		t.Stop()
	}
	if r.client.IsConnectionOpen() {
		tok := r.client.Publish(r.s.statusTopic(), 1, true, "offline")
		if !tok.WaitTimeout(time.Until(r.stopDeadline(offlineBudget))) || tok.Error() != nil {
			r.logger.Warn("`offline` not confirmed before the stop deadline")
		}
		_, _ = r.reap() // confirmations that came in meanwhile
	}
	r.client.Disconnect(disconnectQuiesce)
	r.logger.Info("disconnected", "unconfirmed", len(r.flights), "next_seq", r.b.log.Cursor(r.s.name))
}

// sleep waits d unless the runner is stopped first.
func (r *runner) sleep(d time.Duration) bool {
	if d <= 0 {
		return r.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// onCommand is paho's handler for command topics. It must not block: it
// checks the command and queues it, refusing it when the queue is full.
func (r *runner) onCommand(_ mqtt.Client, m mqtt.Message) {
	adapter, point, ok := r.s.commandTarget(m.Topic())
	if !ok {
		return
	}
	now, maxAge := time.Now(), r.b.view.Load().maxAge
	c, err := checkCommand(m.Payload(), m.Retained(), now, maxAge)
	if err == nil {
		issued := now // a ts ahead of the gateway's clock must not extend the wait
		if !c.TS.IsZero() && c.TS.Before(now) {
			issued = c.TS
		}
		select {
		case r.jobs <- job{adapter, point, c, issued.Add(maxAge)}:
			return
		default:
			err = ErrBusy
		}
	}
	r.logger.Warn("command refused", "adapter", adapter, "point", point, "id", c.ID, "err", err)
	r.answer(result{adapter: adapter, point: point, id: c.ID, err: err})
}

// answer queues a result without blocking.
func (r *runner) answer(res result) {
	select {
	case r.results <- res:
	default:
		r.logger.Warn("command result dropped: too many waiting", "adapter", res.adapter, "point", res.point, "id", res.id)
	}
}

// execute carries out queued commands one at a time, in arrival order. A
// command that waited in the queue past command_max_age is refused, not
// written late.
func (r *runner) execute() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case j := <-r.jobs:
			if r.ctx.Err() != nil {
				return // select picks at random: a stop wins over a queued command
			}
			var v reading.Value
			var err error
			if time.Now().Before(j.expires) {
				ctx, cancel := context.WithTimeout(r.ctx, commandTimeout)
				v, err = r.b.cmd.Command(ctx, j.adapter, j.point, j.cmd.Value)
				cancel()
			} else {
				err = fmt.Errorf("%w: command_max_age passed while it waited its turn", ErrExpired)
			}
			if err != nil {
				r.logger.Warn("command failed", "adapter", j.adapter, "point", j.point, "id", j.cmd.ID, "err", err)
			} else {
				r.logger.Info("command", "adapter", j.adapter, "point", j.point, "id", j.cmd.ID, "value", v)
			}
			select {
			case r.results <- result{adapter: j.adapter, point: j.point, id: j.cmd.ID, written: v, err: err}:
			case <-r.ctx.Done():
				return
			}
		}
	}
}

// publishResults sends command results, each awaited for a bounded time.
func (r *runner) publishResults() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case res := <-r.results:
			tok := r.client.Publish(r.s.resultTopic(res.adapter, res.point), 1, false, res.payload())
			t := time.NewTimer(resultTimeout)
			select {
			case <-tok.Done():
				if err := tok.Error(); err != nil {
					r.logger.Warn("command result not delivered", "adapter", res.adapter, "point", res.point, "id", res.id, "err", err)
				}
			case <-t.C:
				r.logger.Warn("command result not confirmed", "adapter", res.adapter, "point", res.point, "id", res.id)
			case <-r.ctx.Done():
			}
			t.Stop()
		}
	}
}
