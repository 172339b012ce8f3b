package bridge

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/config"
)

// Payload formats (SPEC §3).
const (
	formatJSON      = "json"
	formatValue     = "value"
	formatBatch     = "batch"
	formatCompact   = "compact"
	formatSparkplug = "sparkplug" // SPEC §5: see sparkplug_session.go
)

// settings is one upstream's effective configuration: config.Upstream as
// config.Load completed it, with the broker URLs in paho's schemes. Two equal
// settings mean the upstream can keep its connection across a reload.
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
	sparkplug    config.Sparkplug
	// tlsFiles is a digest of what the TLS files held when the settings
	// were made, so that a reload notices a renewed certificate or key.
	tlsFiles [sha256.Size]byte
	// commandsOnly marks the command connection of an upstream whose
	// readings keep a persistent session (commandlink.go).
	commandsOnly bool
}

// newSettings takes one [[upstream]] of a loaded config, which has every
// default filled in and has been validated.
func newSettings(u config.Upstream) (*settings, error) {
	s := &settings{
		name:         u.Name,
		clientID:     u.ClientID,
		username:     u.Username,
		password:     u.Password,
		qos:          byte(*u.QoS),
		retain:       u.Retain,
		clean:        u.CleanSession,
		keepalive:    u.Keepalive.D(),
		reconnectMax: u.ReconnectMax.D(),
		commands:     *u.Commands,
		prefix:       u.TopicPrefix,
		format:       u.Format,
		batchMax:     u.BatchMax,
		discovery:    u.HomeAssistant,
		tls:          u.TLS,
		tlsFiles:     tlsDigest(u.TLS),
	}
	if u.Sparkplug != nil {
		s.sparkplug = *u.Sparkplug
	}
	for _, raw := range u.URLs {
		b, err := brokerURL(raw)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", u.Name, err)
		}
		s.brokers = append(s.brokers, b)
	}
	return s, nil
}

// pahoSchemes maps the URL schemes of the config (SPEC §2) onto paho's.
var pahoSchemes = map[string]string{
	"mqtt": "tcp", "tcp": "tcp",
	"mqtts": "ssl", "ssl": "ssl", "tls": "ssl",
	"ws": "ws", "wss": "wss",
}

// brokerURL is a config url in paho's terms. It fails only for a url
// config.Load would have refused.
func brokerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// Not wrapped: url.Error quotes the whole URL, password included.
		return nil, fmt.Errorf("bad url %q: it does not parse", config.RedactURL(raw))
	}
	scheme, ok := pahoSchemes[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("url %s: scheme %q is not an MQTT one", u.Redacted(), u.Scheme)
	}
	u.Scheme = scheme
	return u, nil
}

// maxTLSFile bounds what is read of a certificate or key file for the
// digest: such files are a few KiB, and a mistake like /dev/zero must not
// stall a reload.
const maxTLSFile = 1 << 20

// tlsDigest hashes the contents of t's CA, certificate and key files; a file
// that cannot be read contributes its error instead, so it counts as a
// change when it becomes readable.
func tlsDigest(t *config.TLS) [sha256.Size]byte {
	var sum [sha256.Size]byte
	if t == nil {
		return sum
	}
	h := sha256.New()
	for _, name := range []string{t.CAFile, t.CertFile, t.KeyFile} {
		b, err := readBounded(name)
		if err != nil {
			b = []byte(err.Error())
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return [sha256.Size]byte(h.Sum(sum[:0]))
}

func readBounded(name string) ([]byte, error) {
	if name == "" {
		return nil, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxTLSFile))
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
// perPointTopics reports whether the format publishes each point on a
// topic of its own (batch and compact publish an adapter's together).
func (s *settings) perPointTopics() bool {
	return s.format != formatBatch && s.format != formatCompact
}

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
