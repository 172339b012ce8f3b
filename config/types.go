package config

import (
	"fmt"
	"log/slog"
	"time"
)

// Config is the whole gateway configuration, as loaded from one TOML file.
// After Load every default is filled in: pointers for values with a default
// are non-nil and strings with a default are non-empty.
type Config struct {
	Gateway  Gateway    `toml:"gateway"`
	Buffer   Buffer     `toml:"buffer"`
	Upstream []Upstream `toml:"upstream"`
	// Adapters are the tables of the registered adapter kinds ([[modbus]],
	// [[serial]], [[gpio]], …), in file order.
	Adapters []Adapter `toml:"-"`
}

// Gateway holds the [gateway] table.
type Gateway struct {
	ID            string    `toml:"id"`
	TopicPrefix   string    `toml:"topic_prefix"` // default "fieldgate/<id>"
	LogLevel      string    `toml:"log_level"`    // debug | info | warn | error
	MetricsListen string    `toml:"metrics_listen"`
	CommandMaxAge Duration  `toml:"command_max_age"` // default 30s
	TimerSlack    *Duration `toml:"timer_slack"`     // default: Config.TimerSlack's rule; 0: the kernel's
}

// Buffer holds the [buffer] table.
type Buffer struct {
	Dir           string   `toml:"dir"`      // default /var/lib/fieldgate
	MaxSize       Size     `toml:"max_size"` // default 256MiB
	Fsync         string   `toml:"fsync"`    // always | interval | never; default interval
	FsyncInterval Duration `toml:"fsync_interval"`
}

// Upstream is one [[upstream]] MQTT broker (or cluster).
type Upstream struct {
	Name          string   `toml:"name"`
	URL           string   `toml:"url"`
	URLs          []string `toml:"urls"`      // after Load: every broker to try, url included
	ClientID      string   `toml:"client_id"` // default "<gateway.id>-<name>"
	Username      string   `toml:"username"`
	Password      Secret   `toml:"password"`      // after Load: also when read from password_file
	PasswordFile  string   `toml:"password_file"` // relative to the config file's directory
	QoS           *int     `toml:"qos"`           // default 1
	Retain        bool     `toml:"retain"`
	CleanSession  bool     `toml:"clean_session"`
	Keepalive     Duration `toml:"keepalive"`     // default 30s
	ReconnectMax  Duration `toml:"reconnect_max"` // default 10s
	Commands      *bool    `toml:"commands"`      // default true
	TopicPrefix   string   `toml:"topic_prefix"`  // default gateway.topic_prefix
	Format        string   `toml:"format"`        // json | value | batch | compact | sparkplug; default json
	BatchMax      int      `toml:"batch_max"`     // default 100
	HomeAssistant bool     `toml:"homeassistant"`
	TLS           *TLS     `toml:"tls"` // after Load: non-nil exactly when the URLs use TLS
	// Sparkplug is required by format "sparkplug" and refused otherwise.
	// Such an upstream's session is always clean: Load sets CleanSession.
	Sparkplug *Sparkplug `toml:"sparkplug"`
}

// Sparkplug is an upstream's [upstream.sparkplug] table: the gateway's
// identity as a Sparkplug B edge node (SPEC §5).
type Sparkplug struct {
	GroupID    string `toml:"group_id"`     // required
	EdgeNodeID string `toml:"edge_node_id"` // default gateway.id
	// PrimaryHostID, when set, makes the node publish only while the host
	// application of that id says online on spBv1.0/STATE/<id>.
	PrimaryHostID string `toml:"primary_host_id"`
}

// TLS is an upstream's [upstream.tls] table.
type TLS struct {
	CAFile             string   `toml:"ca_file"`
	CertFile           string   `toml:"cert_file"`
	KeyFile            string   `toml:"key_file"`
	ServerName         string   `toml:"server_name"`
	ALPN               []string `toml:"alpn"`
	InsecureSkipVerify bool     `toml:"insecure_skip_verify"`
}

// Line holds serial line settings shared by Modbus RTU and raw serial.
type Line struct {
	BaudRate int    `toml:"baud_rate"` // default 9600
	DataBits int    `toml:"data_bits"` // default 8
	Parity   string `toml:"parity"`    // N | E | O; default N
	StopBits int    `toml:"stop_bits"` // 1 | 2; default 1
}

// Change holds the on-change publishing settings a point may carry.
type Change struct {
	OnChange  bool     `toml:"on_change"`
	Deadband  float64  `toml:"deadband"`
	Heartbeat Duration `toml:"heartbeat"`
}

// Duration is a time.Duration written as a Go duration string ("250ms").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as a number or a string with a unit ("64MiB").
type Size int64

// Secret is a string that never prints: logs and summaries show "***".
type Secret string

// String hides the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "***"
}

// LogValue hides the secret from log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// GoString hides the secret from %#v too.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// MarshalText hides the secret from encoders (JSON, TOML), so a dumped
// config never carries a password.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
