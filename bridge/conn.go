package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fieldgate/fieldgate/internal/backoff"
)

const (
	connectTimeout = 10 * time.Second // per broker: dial, TLS and CONNACK
	writeTimeout   = 2 * time.Second  // one packet onto a stalled socket
	// handoffTimeout bounds paho's wait for its writer to take a publish.
	// Its writer only queues (coalesceconn.go), so the wait is long only
	// while paho tears a lost link down, when the publish fails anyway.
	handoffTimeout = time.Second
	// disconnectQuiesce is what a DISCONNECT waits for paho to finish
	// the work in hand.
	disconnectQuiesce = 250 * time.Millisecond
)

// conn is one upstream's MQTT connection: one paho client, kept for the
// life of the upstream so that its session store (see the package doc)
// outlives each link, dialled by the upstream's goroutine with back-off.
// Other goroutines only publish through it and ask whether it is open.
type conn struct {
	s      *settings
	logger *slog.Logger
	ctx    context.Context // the upstream's: ends at its stop

	hb     *heartbeat // the upstream's
	client mqtt.Client
	store  *sessionStore
	link   atomic.Pointer[coalesceConn] // the writer of the latest link paho opened
	lost   chan error                   // connection losses, from paho
	drops  inboundDrops                 // what becomes of messages too large to read (limitconn.go)

	broker atomic.Pointer[string] // the broker being dialled, for the logs
	online atomic.Bool            // from connected until the link is given up
	// lastErr is the last failure to connect, so a repeat is logged
	// quietly; owned by the dialling goroutine.
	lastErr string

	// will is the message the broker publishes if the link is lost, and
	// sayOffline publishes before a deliberate DISCONNECT (which discards
	// it): `offline` on the status topic, or Sparkplug's NDEATH.
	will willMsg
	// renew, when set, gives the will of each CONNECT: Sparkplug's NDEATH
	// carries a new bdSeq each time, and since paho fixes the will when it
	// makes a client, each attempt then gets a new client (the session is
	// clean, so no session store has to outlive it).
	renew func() (willMsg, error)
	tls   *tls.Config
	first int // the broker tried first, by index in s.brokers
	// stale: the broker may still keep a persistent QoS 2 session from
	// before this conn (a restart, a reload), which forgetSession ends.
	stale bool
}

// willMsg is an MQTT will, always at QoS 1.
type willMsg struct {
	topic   string
	payload []byte
	retain  bool
}

// newConn makes an upstream's connection; its goroutine keeps the promises
// of hb while dialling. Only the readings' connection has a will: `offline`
// speaks for it.
func newConn(ctx context.Context, s *settings, logger *slog.Logger, hb *heartbeat) *conn {
	c := &conn{s: s, logger: logger, ctx: ctx, hb: hb, store: newSessionStore(), lost: make(chan error, 1),
		stale: !s.clean && s.qos == 2}
	if !s.commandsOnly {
		c.will = willMsg{topic: s.statusTopic(), payload: []byte("offline"), retain: true}
	}
	return c
}

// setUp reads the certificate files, retrying with back-off while they are
// unusable, and builds the client; false means the upstream was stopped.
func (c *conn) setUp(bo *backoff.Backoff) bool {
	for {
		t, err := c.s.tlsConfig()
		if err == nil {
			if t != nil && t.InsecureSkipVerify {
				c.logger.Warn("TLS: insecure_skip_verify is set: the broker's certificate is not verified")
			}
			c.tls = t
			c.client = mqtt.NewClient(c.options(t))
			return true
		}
		c.logger.Error("cannot set up the connection", "err", err)
		if !c.pause(bo.Next()) {
			return false
		}
	}
}

func (c *conn) options(tlsCfg *tls.Config) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	for i := range c.s.brokers {
		o.AddBroker(c.s.brokers[(c.first+i)%len(c.s.brokers)].String())
	}
	o.SetClientID(c.s.clientID)
	o.SetUsername(c.s.username)
	o.SetPassword(string(c.s.password))
	o.SetCleanSession(c.s.clean)
	o.SetKeepAlive(c.s.keepalive)
	o.SetPingTimeout(min(c.s.keepalive, 10*time.Second))
	o.SetProtocolVersion(4)
	o.SetConnectTimeout(connectTimeout)
	o.SetDialer(&net.Dialer{Timeout: connectTimeout})
	o.SetCustomOpenConnectionFn(opener(c.s.keepalive, c.logger, c.drops.dropped, c.link.Store))
	o.SetWriteTimeout(handoffTimeout)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false)
	o.SetStore(c.store)
	o.SetTLSConfig(tlsCfg)
	if c.will.topic != "" {
		o.SetBinaryWill(c.will.topic, c.will.payload, 1, c.will.retain)
	}
	// A message no route takes (a command queued in a session from before
	// commands moved to their own connection) is acknowledged and
	// dropped, so the broker does not resend it at every reconnect.
	o.SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {})
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case c.lost <- err:
		default:
		}
	})
	o.SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
		if b, ok := n.(mqtt.ConnectionNotificationBroker); ok {
			s := b.Broker.Redacted()
			c.broker.Store(&s)
		}
	})
	return o
}

// dial connects after delay, with back-off between attempts, until a broker
// accepts. It returns false when the upstream was stopped first; an
// attempt under way at the stop is awaited until abandonBy, and true means
// it succeeded in time, so that the broker still hears `offline`.
func (c *conn) dial(bo *backoff.Backoff, delay time.Duration, abandonBy func() time.Time) (ok, sessionPresent bool) {
	for ; ; delay = bo.Next() {
		if !c.pause(delay) {
			return false, false
		}
		select {
		case <-c.lost: // a late report about the previous connection
		default:
		}
		if c.stale {
			if err := c.forgetSession(); err != nil {
				if c.ctx.Err() == nil {
					c.failed(err)
				}
				continue
			}
			c.stale = false
		}
		if c.renew != nil {
			w, err := c.renew()
			if err != nil {
				c.failed(err)
				continue
			}
			c.will = w
			c.client = mqtt.NewClient(c.options(c.tls))
		}
		tok := c.client.Connect()
		select {
		case <-tok.Done():
		case <-c.ctx.Done():
			if tok.WaitTimeout(time.Until(abandonBy())) && tok.Error() == nil {
				return true, false
			}
			c.client.Disconnect(0)
			return false, false
		}
		if err := tok.Error(); err != nil {
			c.failed(err)
			continue
		}
		c.lastErr = ""
		return true, tok.(*mqtt.ConnectToken).SessionPresent()
	}
}

// forgetSession ends the session the broker keeps under the client id from
// before this conn, with a clean CONNECT and a DISCONNECT. It may hold QoS
// 2 packet ids awaiting their PUBREL, which this conn's store, new, would
// use again: a broker takes a new message under such an id for the old one
// and drops it, and the cursor would move past a reading it never got. What
// the old session had in flight the publisher sends again from the buffer.
func (c *conn) forgetSession() error {
	o := c.options(c.tls)
	o.SetCleanSession(true)
	// No will: its flag off, its QoS and retain must be 0 too (MQTT 3.1.1
	// §3.1.2.6, 3.1.2.7).
	o.WillEnabled, o.WillTopic, o.WillPayload, o.WillQos, o.WillRetained = false, "", nil, 0, false
	o.SetStore(mqtt.NewMemoryStore())
	o.SetConnectionLostHandler(nil) // not this conn's loss
	cl := mqtt.NewClient(o)
	tok := cl.Connect()
	select {
	case <-tok.Done():
	case <-c.ctx.Done():
		cl.Disconnect(0)
		return c.ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return err
	}
	cl.Disconnect(uint(disconnectQuiesce.Milliseconds()))
	return nil
}

// pause waits d, promising a heartbeat after it and the connect attempt
// that follows: each broker's dial and TLS handshake take up to
// connectTimeout each, twice over when the old session is ended first.
// False means the upstream was stopped.
func (c *conn) pause(d time.Duration) bool {
	attempt := 2 * time.Duration(len(c.s.brokers)) * connectTimeout
	if c.stale {
		attempt *= 2
	}
	c.hb.beat(d + attempt)
	return sleep(c.ctx, d)
}

func (c *conn) brokerName() string {
	if s := c.broker.Load(); s != nil {
		return *s
	}
	return ""
}

// failed logs a failure to connect: a TLS failure as an error, others as
// warnings, a repeat of the last failure quietly.
func (c *conn) failed(err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := j.Unwrap(); len(errs) == 2 {
			err = errs[1] // paho joins its return code's text with the cause
		}
	}
	level := slog.LevelWarn
	if isTLSError(err) {
		level, err = slog.LevelError, fmt.Errorf("TLS: %w", err)
	}
	if err.Error() == c.lastErr {
		level = slog.LevelDebug // the same failure again: said already
	}
	c.lastErr = err.Error()
	c.logger.Log(c.ctx, level, "cannot connect", "broker", c.brokerName(), "err", err)
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

// connected starts a new link: it is online and says so, retained, as the
// birth message (a Sparkplug session has births of its own).
func (c *conn) connected() {
	c.online.Store(true)
	if c.s.format != formatSparkplug {
		c.client.Publish(c.s.statusTopic(), 1, true, "online")
	}
}

// moveOn makes the next dial try first the broker after the one it is
// connected to.
func (c *conn) moveOn() {
	for i, b := range c.s.brokers {
		if b.Redacted() == c.brokerName() {
			c.first = (i + 1) % len(c.s.brokers)
			return
		}
	}
}

// isOpen reports whether the link is up.
func (c *conn) isOpen() bool { return c.client.IsConnectionOpen() }

// publish hands paho one message.
func (c *conn) publish(topic string, qos byte, retain bool, payload any) mqtt.Token {
	return c.client.Publish(topic, qos, retain, payload)
}

// sayOffline publishes the will (`offline`, retained; or Sparkplug's
// NDEATH), which a DISCONNECT discards, and waits for the broker's
// confirmation until deadline.
func (c *conn) sayOffline(deadline time.Time) {
	tok := c.client.Publish(c.will.topic, 1, c.will.retain, c.will.payload)
	if !tok.WaitTimeout(time.Until(deadline)) || tok.Error() != nil {
		c.logger.Warn("the will's message was not confirmed before the deadline", "topic", c.will.topic)
	}
}

// disconnect closes the link, giving paho disconnectQuiesce to finish.
func (c *conn) disconnect() { c.client.Disconnect(uint(disconnectQuiesce.Milliseconds())) }

// sleep waits d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
