package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// topicPrefix fills an empty prefix with def, which is checked where it
// comes from, and checks a given one.
func (o *Check) topicPrefix(v *string, def string) {
	if *v == "" {
		*v = def
		return
	}
	if strings.ContainsAny(*v, "+#\x00") || strings.HasSuffix(*v, "/") {
		o.Errorf("topic_prefix", "bad topic_prefix %q: no wildcards (+ #) and no trailing /", *v)
	}
}

// check fills defaults and validates c, in file order.
func (l *loader) check(c *Config) {
	root := node{}
	l.gateway(l.table(root.child("gateway")), &c.Gateway)
	l.buffer(l.table(root.child("buffer")), &c.Buffer)

	upstreams := map[string]node{}
	for i := range c.Upstream {
		u := &c.Upstream[i]
		l.upstream(l.table(root.elem("upstream", i, u.Name)), u, &c.Gateway, upstreams)
	}

	names := map[string]node{}
	for i, a := range c.Adapters {
		ck := l.table(l.adapterNodes[i])
		if ck.name(a.Name, "name", true) {
			ck.unique(names, a.Name, "adapter")
		}
		a.Config.Check(ck)
	}
}

func (l *loader) table(n node) *Check { return &Check{l: l, n: n} }

func (l *loader) gateway(o *Check, g *Gateway) {
	o.name(g.ID, "id", false)
	o.topicPrefix(&g.TopicPrefix, "fieldgate/"+g.ID)
	g.LogLevel = strings.ToLower(g.LogLevel)
	o.Choice(&g.LogLevel, "log_level", "info", "debug", "info", "warn", "error")
	if g.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(g.MetricsListen); err != nil {
			o.Errorf("metrics_listen", "bad metrics_listen %q: want host:port", g.MetricsListen)
		}
	}
	o.Duration(&g.CommandMaxAge, "command_max_age", 30*time.Second, 0)
	if g.TimerSlack != nil && g.TimerSlack.D() > maxTimerSlack {
		o.Errorf("timer_slack", "timer_slack must be at most %s", maxTimerSlack)
	}
}

func (l *loader) buffer(o *Check, b *Buffer) {
	if b.Dir == "" {
		b.Dir = "/var/lib/fieldgate"
	}
	if !o.Has("max_size") {
		b.MaxSize = 256 << 20
	} else if b.MaxSize <= 0 {
		o.Errorf("max_size", "max_size must be more than 0")
	}
	o.Choice(&b.Fsync, "fsync", "interval", "always", "interval", "never")
	o.Duration(&b.FsyncInterval, "fsync_interval", time.Second, 0)
}

// MQTT URL schemes, and those that mean TLS.
var (
	mqttSchemes = []string{"mqtt", "tcp", "mqtts", "ssl", "tls", "ws", "wss"}
	tlsSchemes  = []string{"mqtts", "ssl", "tls", "wss"}
)

func (l *loader) upstream(o *Check, u *Upstream, g *Gateway, seen map[string]node) {
	if o.name(u.Name, "name", false) {
		o.unique(seen, u.Name, "upstream")
	}
	if u.ClientID == "" {
		u.ClientID = g.ID + "-" + u.Name
	}

	// url and urls are two spellings of one list; after Load, URLs has it.
	key := func(int) string { return "url" }
	switch {
	case u.URL == "" && len(u.URLs) == 0:
		o.Errorf("url", "url or urls is required")
	case u.URL != "" && len(u.URLs) > 0:
		o.Errorf("urls", "give url or urls, not both")
	case u.URL != "":
		u.URLs = []string{u.URL}
	default:
		key = func(i int) string { return join("urls", fmt.Sprint(i)) }
	}
	var secure, plain int
	for i, s := range u.URLs {
		p, err := url.Parse(s)
		switch {
		case err != nil || !slices.Contains(mqttSchemes, p.Scheme) || p.Hostname() == "":
			o.Errorf(key(i), "bad url %q: want mqtt://, tcp://, mqtts://, ssl://, tls://, ws:// or wss:// and a host", RedactURL(s))
		case p.Port() == "" && p.Scheme != "ws" && p.Scheme != "wss":
			o.Errorf(key(i), "url %q has no port", RedactURL(s))
		case slices.Contains(tlsSchemes, p.Scheme):
			secure++
		default:
			plain++
		}
	}
	switch {
	case secure > 0 && plain > 0:
		o.Errorf("urls", "urls mix TLS and plain schemes")
	case secure > 0 && u.TLS == nil:
		u.TLS = &TLS{}
	case plain > 0 && u.TLS != nil:
		o.Errorf("tls", "tls is set but the url scheme is not a TLS one (use mqtts://, ssl://, tls:// or wss://)")
	}
	if u.TLS != nil {
		t := o.Table("tls")
		switch {
		case u.TLS.CertFile != "" && u.TLS.KeyFile == "":
			t.Errorf("cert_file", "cert_file needs key_file")
		case u.TLS.KeyFile != "" && u.TLS.CertFile == "":
			t.Errorf("key_file", "key_file needs cert_file")
		}
	}

	switch {
	case u.PasswordFile != "" && u.Password != "":
		o.Errorf("password_file", "give password or password_file, not both")
	case u.PasswordFile != "":
		b, err := o.l.readFile(u.PasswordFile)
		if err != nil {
			o.l.fail(o.n, "password_file", err, fmt.Sprintf("password_file: %v", err))
		}
		u.Password = Secret(strings.TrimRight(string(b), "\r\n"))
	}

	if u.QoS == nil {
		u.QoS = new(int)
		*u.QoS = 1
	} else if *u.QoS < 0 || *u.QoS > 2 {
		o.Errorf("qos", "qos %d out of range 0..2", *u.QoS)
	}
	o.Duration(&u.Keepalive, "keepalive", 30*time.Second, time.Second)
	if u.Keepalive.D() > maxKeepalive {
		o.Errorf("keepalive", "keepalive must be at most %s (MQTT counts it in 16 bits of seconds)", maxKeepalive)
	}
	o.Duration(&u.ReconnectMax, "reconnect_max", 10*time.Second, time.Second)
	if u.Commands == nil {
		u.Commands = new(bool)
		*u.Commands = true
	}
	o.topicPrefix(&u.TopicPrefix, g.TopicPrefix)
	o.Choice(&u.Format, "format", "json", "json", "value", "batch", "compact", "sparkplug")
	o.Int(&u.BatchMax, "batch_max", DefaultBatchMax, 1, maxBatch)
	o.sparkplug(u, g)
}

// sparkplug checks the [upstream.sparkplug] table, which format
// "sparkplug" needs and no other format takes. Sparkplug sessions are
// clean and nothing in them is retained (SPEC §5): clean_session is set
// whatever the file says, and retain or homeassistant, which would need
// retained messages, are refused rather than silently dropped.
func (o *Check) sparkplug(u *Upstream, g *Gateway) {
	sp := u.Sparkplug
	switch {
	case u.Format != "sparkplug":
		if sp != nil {
			o.Errorf("sparkplug", "a sparkplug table needs format = \"sparkplug\"")
		}
		return
	case sp == nil:
		o.Errorf("format", "format \"sparkplug\" needs an [upstream.sparkplug] table with group_id")
		return
	}
	u.CleanSession = true
	if u.Retain {
		o.Errorf("retain", "retain must be false with format \"sparkplug\": Sparkplug messages are never retained")
	}
	if u.HomeAssistant {
		o.Errorf("homeassistant", "homeassistant does not go with format \"sparkplug\", which has no topic per point")
	}
	t := o.Table("sparkplug")
	if t.Required(sp.GroupID, "group_id") {
		t.sparkplugID(sp.GroupID, "group_id")
	}
	if sp.EdgeNodeID == "" {
		sp.EdgeNodeID = g.ID // a valid gateway id is a valid Sparkplug id
	} else {
		t.sparkplugID(sp.EdgeNodeID, "edge_node_id")
	}
	if sp.PrimaryHostID != "" {
		t.sparkplugID(sp.PrimaryHostID, "primary_host_id")
	}
}

// sparkplugID checks a Sparkplug group, edge node or host id by the rule
// of bridge/sparkplug.CheckID (which this package cannot import): each is
// one topic level, so it is UTF-8 without + / and #, nor the NUL no MQTT
// topic may hold.
func (o *Check) sparkplugID(v, k string) {
	if !utf8.ValidString(v) || strings.ContainsAny(v, "+/#\x00") {
		o.Errorf(k, "bad %s %q: must be UTF-8 without + / #", k, v)
	}
}

const (
	// maxKeepalive is the longest keepalive MQTT can carry: 65535 s.
	maxKeepalive = 65535 * time.Second
	// maxBatch bounds readings per batch message: about 1 MB of JSON,
	// EMQX's default packet limit (AWS IoT Core takes 128 KB: about 1,200).
	maxBatch = 10_000
)

// DefaultBatchMax is batch_max unless the upstream sets it: the most
// readings a batch or compact message carries.
const DefaultBatchMax = 100
