package config

import (
	"fmt"
	"net/url"
	"strings"
)

// AdapterSpec is one configured adapter, ready to hand to adapters.New.
type AdapterSpec struct {
	Kind   string // KindModbus, KindSerial or KindGPIO
	Name   string
	Config any // *Modbus, *Serial or *GPIO, pointing into the Config
}

// Adapters lists every adapter: Modbus, then serial, then GPIO, each in file
// order.
func (c *Config) Adapters() []AdapterSpec {
	var as []AdapterSpec
	for i := range c.Modbus {
		as = append(as, AdapterSpec{KindModbus, c.Modbus[i].Name, &c.Modbus[i]})
	}
	for i := range c.Serial {
		as = append(as, AdapterSpec{KindSerial, c.Serial[i].Name, &c.Serial[i]})
	}
	for i := range c.GPIO {
		as = append(as, AdapterSpec{KindGPIO, c.GPIO[i].Name, &c.GPIO[i]})
	}
	return as
}

// PointInfo is what the bridge needs to know about a point without importing
// the adapter that serves it: where commands may go and how readings look.
type PointInfo struct {
	Adapter  string
	Point    string
	Kind     string // the adapter's kind
	Type     string // the point's configured type; for GPIO "bool", or "uint64" for a counter
	Unit     string
	Writable bool
}

// Points lists every point in the order of Adapters.
func (c *Config) Points() []PointInfo {
	var ps []PointInfo
	for _, m := range c.Modbus {
		for _, p := range m.Points {
			ps = append(ps, PointInfo{m.Name, p.Name, KindModbus, p.Type, p.Unit, p.Writable})
		}
	}
	for _, s := range c.Serial {
		for _, p := range s.Points {
			ps = append(ps, PointInfo{s.Name, p.Name, KindSerial, p.Type, p.Unit, p.WriteFormat != ""})
		}
	}
	for _, g := range c.GPIO {
		for _, p := range g.Points {
			typ := "bool"
			if p.Counter {
				typ = "uint64"
			}
			ps = append(ps, PointInfo{g.Name, p.Name, KindGPIO, typ, p.Unit, p.Direction == "output"})
		}
	}
	return ps
}

// Summary is the short description `fieldgate check` prints of a loaded
// Config. It names no secret: passwords are left out and URLs have theirs
// redacted.
func (c *Config) Summary() string {
	var b strings.Builder
	g := c.Gateway
	fmt.Fprintf(&b, "gateway %s: topic prefix %s, log level %s\n", g.ID, g.TopicPrefix, g.LogLevel)
	fmt.Fprintf(&b, "buffer %s: max %s, fsync %s", c.Buffer.Dir, c.Buffer.MaxSize, c.Buffer.Fsync)
	if c.Buffer.Fsync == "interval" {
		fmt.Fprintf(&b, " every %s", c.Buffer.FsyncInterval)
	}
	b.WriteString("\n")

	as := c.Adapters()
	fmt.Fprintf(&b, "%s, %s:\n", plural(len(as), "adapter"), plural(len(c.Points()), "point"))
	for _, m := range c.Modbus {
		fmt.Fprintf(&b, "  modbus %s: %s unit %d, %s every %s\n", m.Name, RedactURL(m.URL), m.UnitID, plural(len(m.Points), "point"), m.Interval)
	}
	for _, s := range c.Serial {
		fmt.Fprintf(&b, "  serial %s: %s %d baud, %s mode, %s\n", s.Name, s.Port, s.BaudRate, s.Mode, plural(len(s.Points), "point"))
	}
	for _, gp := range c.GPIO {
		fmt.Fprintf(&b, "  gpio %s: %s, %s\n", gp.Name, gp.Chip, plural(len(gp.Points), "point"))
	}

	fmt.Fprintf(&b, "%s:\n", plural(len(c.Upstream), "upstream"))
	for _, u := range c.Upstream {
		urls := make([]string, len(u.URLs))
		for i, s := range u.URLs {
			urls[i] = RedactURL(s)
		}
		fmt.Fprintf(&b, "  %s: %s, qos %d, %s", u.Name, strings.Join(urls, " "), *u.QoS, u.Format)
		if u.TLS != nil {
			b.WriteString(", tls")
			if u.TLS.CertFile != "" {
				b.WriteString(" with client certificate")
			}
			if u.TLS.InsecureSkipVerify {
				b.WriteString(" (certificate NOT verified)")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// RedactURL hides a password given in a URL's user information, so a URL
// can be logged or printed; a URL that does not parse loses everything up to
// its last "@".
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		return "…@" + s[at+1:]
	}
	return s
}
