package bridge

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/peers"
)

// TestNewSettings loads each upstream as the gateway does and checks what
// the bridge makes of it; the upstreams config.Load refuses never reach it.
func TestNewSettings(t *testing.T) {
	two := 2
	off := false
	tests := []struct {
		name    string
		u       config.Upstream
		brokers string // joined
		check   func(*settings) string
		wantErr string // from config.Load
	}{
		{"defaults", config.Upstream{Name: "cloud", URL: "mqtt://broker:1883"}, "tcp://broker:1883", func(s *settings) string {
			if s.clientID != "gw-cloud" || s.qos != 1 || !s.commands || s.prefix != "fg/gw" || s.format != formatJSON ||
				s.batchMax != 100 || s.keepalive != 30*time.Second || s.reconnectMax != 10*time.Second || s.tls != nil {
				return "defaults not applied"
			}
			return ""
		}, ""},
		{"tls schemes", config.Upstream{Name: "c", URLs: []string{"mqtts://a:8883", "ssl://b:1", "tls://c:8883", "wss://d/mqtt"}},
			"ssl://a:8883 ssl://b:1 ssl://c:8883 wss://d/mqtt", func(s *settings) string {
				if s.tls == nil {
					return "TLS not implied"
				}
				return ""
			}, ""},
		{"explicit", config.Upstream{Name: "c", URLs: []string{"tcp://a:1", "ws://b:8080/mqtt"}, QoS: &two, Commands: &off,
			TopicPrefix: "x", Format: formatBatch, BatchMax: 7, ClientID: "me"},
			"tcp://a:1 ws://b:8080/mqtt", func(s *settings) string {
				if s.qos != 2 || s.commands || s.prefix != "x" || s.format != formatBatch || s.batchMax != 7 || s.clientID != "me" {
					return "settings not taken"
				}
				return ""
			}, ""},
		{"url, which config.Load also puts in urls, tried once", config.Upstream{Name: "c", URL: "mqtt://a:1"},
			"tcp://a:1", func(*settings) string { return "" }, ""},
		{"no url", config.Upstream{Name: "c"}, "", nil, "url or urls is required"},
		{"bad scheme", config.Upstream{Name: "c", URL: "http://a:1"}, "", nil, "bad url"},
		{"tls on plain url", config.Upstream{Name: "c", URL: "mqtt://a:1", TLS: &config.TLS{ServerName: "a"}}, "", nil, "not a TLS one"},
		{"bad format", config.Upstream{Name: "c", URL: "mqtt://a:1", Format: "xml"}, "", nil, "unknown format"},
		{"password hidden", config.Upstream{Name: "c", URL: "bogus://u:hunter2@a"}, "", nil, "u:xxxxx@a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(t, "", tt.u)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err := newSettings(cfg.Upstream[0])
			if err != nil {
				t.Fatal(err)
			}
			var bs []string
			for _, b := range s.brokers {
				bs = append(bs, b.String())
			}
			if got := strings.Join(bs, " "); got != tt.brokers {
				t.Errorf("brokers = %s, want %s", got, tt.brokers)
			}
			if msg := tt.check(s); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestCommandTarget(t *testing.T) {
	s := &settings{prefix: "fg/gw"}
	tests := []struct {
		topic, adapter, point string
		ok                    bool
	}{
		{"fg/gw/boiler/temp/set", "boiler", "temp", true},
		{"fg/gw/boiler/set", "", "", false},
		{"fg/gw/boiler/temp/x/set", "", "", false},
		{"other/boiler/temp/set", "", "", false},
		{"fg/gw/boiler/temp/set/result", "", "", false},
	}
	for _, tt := range tests {
		a, p, ok := s.commandTarget(tt.topic)
		if a != tt.adapter || p != tt.point || ok != tt.ok {
			t.Errorf("%s: got %q %q %v", tt.topic, a, p, ok)
		}
	}
}

func TestSessionStore(t *testing.T) {
	s := newSessionStore()
	p1, p2, p3 := packets.NewControlPacket(packets.Publish), packets.NewControlPacket(packets.Publish), packets.NewControlPacket(packets.Publish)
	s.Put("o.9", p1)
	s.Put("o.2", p2)
	s.Put("o.5", p3)
	if got := strings.Join(s.All(), " "); got != "o.9 o.2 o.5" {
		t.Fatalf("All = %s, want insertion order", got)
	}
	mark := func(key string) storeMark {
		t.Helper()
		m, ok := s.mark(key)
		if !ok {
			t.Fatalf("%s not stored", key)
		}
		return m
	}
	m9, m2, m5 := mark("o.9"), mark("o.2"), mark("o.5")
	w := s.wait()
	s.Del("o.2")
	select {
	case <-w:
	default:
		t.Fatal("Del did not signal")
	}
	if s.holds(m2) || !s.holds(m9) {
		t.Fatal("holds wrong after Del")
	}
	// At PUBREC paho replaces a QoS 2 message's PUBLISH with its PUBREL:
	// the message is still held until PUBCOMP deletes it.
	s.Put("o.9", packets.NewControlPacket(packets.Pubrel))
	if !s.holds(m9) {
		t.Fatal("a message whose PUBREL replaced its PUBLISH counts as delivered")
	}
	s.Del("o.9")
	s.Put("o.9", p2) // the id reused for another message
	if s.holds(m9) {
		t.Fatal("holds a message whose id went to another")
	}
	s.Close() // the content survives the client's Close/Open
	s.Open()
	if !s.holds(m5) {
		t.Fatal("Close dropped the content")
	}
	s.Reset()
	if len(s.All()) != 0 || s.holds(m5) {
		t.Fatal("Reset kept packets")
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca := peers.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "gw", false)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		tls     config.TLS
		wantErr string
	}{
		{"system roots", config.TLS{ServerName: "broker", ALPN: []string{"x-amzn-mqtt-ca"}}, ""},
		{"mutual", config.TLS{CAFile: ca.CertFile, CertFile: cert, KeyFile: key}, ""},
		{"missing ca", config.TLS{CAFile: filepath.Join(dir, "nope.pem")}, "TLS: ca_file: open"},
		{"ca without pem", config.TLS{CAFile: notPEM}, "no PEM certificate"},
		{"key without cert", config.TLS{KeyFile: key}, "TLS: client certificate"},
		{"cert with the wrong key", config.TLS{CertFile: cert, KeyFile: ca.CertFile}, "TLS: client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &settings{tls: &tt.tls}
			c, err := s.tlsConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), string(keyPEM[40:80])) {
					t.Fatalf("the error shows key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ServerName != tt.tls.ServerName || len(c.NextProtos) != len(tt.tls.ALPN) ||
				(tt.tls.CAFile == "") != (c.RootCAs == nil) || (tt.tls.CertFile == "") != (len(c.Certificates) == 0) {
				t.Errorf("config %+v does not follow %+v", c, tt.tls)
			}
		})
	}
}

// TestTLSDigest checks that the settings of one config differ exactly when
// a TLS file's contents changed (or it became readable), so a reload keeps
// an upstream whose files are the same and renews one whose files are not.
func TestTLSDigest(t *testing.T) {
	dir := t.TempDir()
	ca := peers.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "gw", false)
	settingsNow := func() *settings {
		t.Helper()
		cfg := testConfig(t, upstreamCfg("c", "mqtts://b:8883", func(u *config.Upstream) {
			u.TLS = &config.TLS{CAFile: ca.CertFile, CertFile: cert, KeyFile: key}
		}))
		s, err := newSettings(cfg.Upstream[0])
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := settingsNow()
	if again := settingsNow(); !reflect.DeepEqual(first, again) {
		t.Error("the same files give different settings")
	}
	ca.Issue(t, dir, "gw", false) // a renewed certificate and key, in place
	renewed := settingsNow()
	if reflect.DeepEqual(first, renewed) || !onlyTLSFilesDiffer(renewed, first) {
		t.Error("renewed files not noticed, or noticed as another change")
	}
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if gone := settingsNow(); reflect.DeepEqual(gone, renewed) {
		t.Error("a key file gone not noticed")
	}
}
