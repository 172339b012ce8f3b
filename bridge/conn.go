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

	client mqtt.Client
	store  *sessionStore
	lost   chan error   // connection losses, from paho
	drops  inboundDrops // what becomes of messages too large to read (limitconn.go)

	broker atomic.Pointer[string] // the broker being dialled, for the logs
	online atomic.Bool            // from connected until the link is given up
	// lastErr is the last failure to connect, so a repeat is logged
	// quietly; owned by the dialling goroutine.
	lastErr string
}

func newConn(ctx context.Context, s *settings, logger *slog.Logger) *conn {
	return &conn{s: s, logger: logger, ctx: ctx, store: newSessionStore(), lost: make(chan error, 1)}
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
			c.client = mqtt.NewClient(c.options(t))
			return true
		}
		c.logger.Error("cannot set up the connection", "err", err)
		if !sleep(c.ctx, bo.Next()) {
			return false
		}
	}
}

func (c *conn) options(tlsCfg *tls.Config) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	for _, b := range c.s.brokers {
		o.AddBroker(b.String())
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
	o.SetCustomOpenConnectionFn(limitedOpener(maxInboundPacket, c.drops.dropped))
	o.SetWriteTimeout(writeTimeout)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false)
	o.SetStore(c.store)
	o.SetTLSConfig(tlsCfg)
	if !c.s.commandsOnly { // `offline` speaks for the readings' connection
		o.SetWill(c.s.statusTopic(), "offline", 1, true)
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
		if !sleep(c.ctx, delay) {
			return false, false
		}
		select {
		case <-c.lost: // a late report about the previous connection
		default:
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
// birth message.
func (c *conn) connected() {
	c.online.Store(true)
	c.client.Publish(c.s.statusTopic(), 1, true, "online")
}

// isOpen reports whether the link is up.
func (c *conn) isOpen() bool { return c.client.IsConnectionOpen() }

// publish hands paho one message.
func (c *conn) publish(topic string, qos byte, retain bool, payload any) mqtt.Token {
	return c.client.Publish(topic, qos, retain, payload)
}

// sayOffline publishes `offline`, retained, and waits for the broker's
// confirmation until deadline.
func (c *conn) sayOffline(deadline time.Time) {
	tok := c.client.Publish(c.s.statusTopic(), 1, true, "offline")
	if !tok.WaitTimeout(time.Until(deadline)) || tok.Error() != nil {
		c.logger.Warn("`offline` not confirmed before the stop deadline")
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
