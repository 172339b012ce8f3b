package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/config"
)

// Payload formats (SPEC §3).
const (
	formatJSON  = "json"
	formatValue = "value"
	formatBatch = "batch"
)

// Defaults for settings a hand-built config may leave empty; config.Load
// fills the same ones.
const (
	defaultQoS          = 1
	defaultKeepalive    = 30 * time.Second
	defaultReconnectMax = 10 * time.Second
	defaultBatchMax     = 100
	defaultCommandAge   = 30 * time.Second
)

// settings is one upstream's effective configuration: config.Upstream with
// every default applied and the broker URLs parsed. Two equal settings mean
// the upstream can keep its connection across a reload.
type settings struct {
	name         string
	brokers      []*url.URL // paho schemes: tcp, ssl, ws, wss
	clientID     string
	username     string
	password     config.Secret
	qos          byte
	retain       bool
	clean        bool
	keepalive    time.Duration
	reconnectMax time.Duration
	commands     bool
	prefix       string
	format       string
	batchMax     int
	discovery    bool        // homeassistant: publish Home Assistant discovery configs
	tls          *config.TLS // nil: plain connection
}

// newSettings resolves one [[upstream]] against the [gateway] table.
func newSettings(g config.Gateway, u config.Upstream) (*settings, error) {
	s := &settings{
		name:         u.Name,
		clientID:     u.ClientID,
		username:     u.Username,
		password:     u.Password,
		qos:          defaultQoS,
		retain:       u.Retain,
		clean:        u.CleanSession,
		keepalive:    u.Keepalive.D(),
		reconnectMax: u.ReconnectMax.D(),
		commands:     u.Commands == nil || *u.Commands,
		prefix:       u.TopicPrefix,
		format:       u.Format,
		batchMax:     u.BatchMax,
		discovery:    u.HomeAssistant,
	}
	if s.name == "" {
		return nil, errors.New("upstream without a name")
	}
	if s.clientID == "" {
		s.clientID = g.ID + "-" + u.Name
	}
	if u.QoS != nil {
		if *u.QoS < 0 || *u.QoS > 2 {
			return nil, fmt.Errorf("upstream %q: qos %d is not 0, 1 or 2", u.Name, *u.QoS)
		}
		s.qos = byte(*u.QoS)
	}
	if s.keepalive <= 0 {
		s.keepalive = defaultKeepalive
	}
	if s.reconnectMax <= 0 {
		s.reconnectMax = defaultReconnectMax
	}
	if s.prefix == "" {
		s.prefix = g.TopicPrefix
	}
	if s.prefix == "" {
		s.prefix = "fieldgate/" + g.ID
	}
	switch s.format {
	case "":
		s.format = formatJSON
	case formatJSON, formatValue, formatBatch:
	default:
		return nil, fmt.Errorf("upstream %q: unknown format %q", u.Name, s.format)
	}
	if s.batchMax <= 0 {
		s.batchMax = defaultBatchMax
	}
	// config.Load leaves url in place and copies it into urls; a
	// hand-built config may give either or both. Each broker is tried once.
	raw := u.URLs
	if u.URL != "" && !slices.Contains(raw, u.URL) {
		raw = append([]string{u.URL}, raw...)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("upstream %q: no url", u.Name)
	}
	secure := false
	for _, r := range raw {
		b, tlsScheme, err := brokerURL(r)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", u.Name, err)
		}
		secure = secure || tlsScheme
		s.brokers = append(s.brokers, b)
	}
	if u.TLS != nil || secure {
		for _, b := range s.brokers {
			if b.Scheme == "tcp" || b.Scheme == "ws" {
				return nil, fmt.Errorf("upstream %q: url %s is not a TLS scheme, but TLS is configured", u.Name, b.Redacted())
			}
		}
		t := config.TLS{}
		if u.TLS != nil {
			t = *u.TLS
			t.ALPN = append([]string(nil), t.ALPN...)
		}
		s.tls = &t
	}
	return s, nil
}

// brokerURL maps a SPEC url onto paho's schemes and fills in the default
// port, reporting whether the scheme implies TLS.
func brokerURL(raw string) (*url.URL, bool, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// Not wrapped: url.Error quotes the whole URL, password included.
		return nil, false, fmt.Errorf("bad url %q: it does not parse", config.RedactURL(raw))
	}
	var port string
	secure := false
	switch strings.ToLower(u.Scheme) {
	case "mqtt", "tcp":
		u.Scheme, port = "tcp", "1883"
	case "mqtts", "ssl", "tls":
		u.Scheme, port, secure = "ssl", "8883", true
	case "ws":
		u.Scheme = "ws"
	case "wss":
		u.Scheme, secure = "wss", true
	default:
		return nil, false, fmt.Errorf("url %s: unknown scheme %q (use mqtt, tcp, mqtts, ssl, tls, ws or wss)", u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, false, fmt.Errorf("url %s: no host", u.Redacted())
	}
	if port != "" && u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, secure, nil
}

// tlsConfig loads the certificate files; it runs before every new client so a
// fixed file is picked up without a restart.
func (s *settings) tlsConfig() (*tls.Config, error) {
	if s.tls == nil {
		return nil, nil
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         s.tls.ServerName,
		NextProtos:         s.tls.ALPN,
		InsecureSkipVerify: s.tls.InsecureSkipVerify, // the operator asked; the log warns
	}
	if s.tls.CAFile != "" {
		pem, err := os.ReadFile(s.tls.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS: ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS: ca_file %s: no PEM certificate in it", s.tls.CAFile)
		}
	}
	if s.tls.CertFile != "" || s.tls.KeyFile != "" {
		// The error names files and what is wrong, never key material.
		cert, err := tls.LoadX509KeyPair(s.tls.CertFile, s.tls.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS: client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Topics of one upstream.
func (s *settings) statusTopic() string                { return s.prefix + "/status" }
func (s *settings) adapterStatusTopic(a string) string { return s.prefix + "/" + a + "/status" }
func (s *settings) commandFilter() string              { return s.prefix + "/+/+/set" }
func (s *settings) resultTopic(adapter, point string) string {
	return s.prefix + "/" + adapter + "/" + point + "/set/result"
}

// commandTarget splits a command topic into adapter and point.
func (s *settings) commandTarget(topic string) (adapter, point string, ok bool) {
	rest, ok := strings.CutPrefix(topic, s.prefix+"/")
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, "/set")
	if !ok {
		return "", "", false
	}
	adapter, point, ok = strings.Cut(rest, "/")
	if !ok || adapter == "" || point == "" || strings.Contains(point, "/") {
		return "", "", false
	}
	return adapter, point, true
}
