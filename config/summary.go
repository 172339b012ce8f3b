package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// Points lists every point, adapter by adapter in file order.
func (c *Config) Points() []reading.Point {
	var ps []reading.Point
	for _, a := range c.Adapters {
		ps = append(ps, a.Config.PointInfo()...)
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

	fmt.Fprintf(&b, "%s, %s:\n", Count(len(c.Adapters), "adapter"), Count(len(c.Points()), "point"))
	for _, a := range c.Adapters {
		fmt.Fprintf(&b, "  %s %s: %s\n", a.Kind, a.Name, a.Config.Summary())
	}

	fmt.Fprintf(&b, "%s:\n", Count(len(c.Upstream), "upstream"))
	for _, u := range c.Upstream {
		urls := make([]string, len(u.URLs))
		for i, s := range u.URLs {
			urls[i] = RedactURL(s)
		}
		fmt.Fprintf(&b, "  %s: %s, qos %d, %s", u.Name, strings.Join(urls, " "), *u.QoS, u.Format)
		if sp := u.Sparkplug; sp != nil {
			fmt.Fprintf(&b, " group %s edge node %s", sp.GroupID, sp.EdgeNodeID)
			if sp.PrimaryHostID != "" {
				fmt.Fprintf(&b, " primary host %s", sp.PrimaryHostID)
			}
		}
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
