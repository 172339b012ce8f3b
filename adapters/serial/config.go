package serial

import (
	"fmt"
	"regexp"
	"time"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// Config is one [[serial]] table: a line-protocol instrument.
type Config struct {
	Name string `toml:"name"`
	Port string `toml:"port"`
	config.Line
	Mode      string          `toml:"mode"` // line | query; default line
	Request   string          `toml:"request"`
	Interval  config.Duration `toml:"interval"`  // query mode; required there
	Delimiter string          `toml:"delimiter"` // default "\n"
	Timeout   config.Duration `toml:"timeout"`   // default 1s
	Points    []PointConfig   `toml:"point"`
}

// PointConfig is one [[serial.point]].
type PointConfig struct {
	Name        string `toml:"name"`
	Pattern     string `toml:"pattern"`
	Type        string `toml:"type"` // float64 | int64 | bool | string; default float64
	WriteFormat string `toml:"write_format"`
	Unit        string `toml:"unit"`
	// MinWriteInterval refuses commands closer together than this (see
	// config.OnOffWriteInterval for the default).
	MinWriteInterval config.Duration `toml:"min_write_interval"`
	config.Change
}

// AdapterName implements config.AdapterConfig.
func (c *Config) AdapterName() string { return c.Name }

// Check implements config.AdapterConfig.
func (c *Config) Check(ck *config.Check) {
	if len(c.Points) == 0 {
		ck.NoPoints()
	}
	ck.SerialLine(&c.Line)
	if ck.Required(c.Port, "port") {
		ck.SerialPort("port", c.Port, c.Line, false)
	}
	ck.Choice(&c.Mode, "mode", "line", "line", "query")
	if c.Mode == "query" {
		ck.Required(c.Request, "request")
		if ck.Has("interval") {
			ck.Duration(&c.Interval, "interval", 0, 0)
		} else {
			ck.Errorf("interval", "query mode needs an interval")
		}
	}
	if c.Delimiter == "" {
		c.Delimiter = "\n"
	}
	ck.Duration(&c.Timeout, "timeout", time.Second, 0)

	for i := range c.Points {
		pt := &c.Points[i]
		p := ck.Point(i, pt.Name)
		if p.Required(pt.Pattern, "pattern") {
			re, err := regexp.Compile(pt.Pattern)
			switch {
			case err != nil:
				p.Errorf("pattern", "bad pattern: %v", err)
			case re.NumSubexp() < 1:
				p.Errorf("pattern", "pattern %q has no (group) to take the value from", pt.Pattern)
			}
		}
		p.Choice(&pt.Type, "type", "float64", "float64", "int64", "bool", "string")
		p.WriteInterval(&pt.MinWriteInterval, "min_write_interval", pt.Type == "bool")
		p.Change(&pt.Change)
	}
}

// PollInterval implements config.AdapterConfig: the query interval; a
// device in line mode speaks when it will.
func (c *Config) PollInterval() time.Duration {
	if c.Mode != "query" {
		return 0
	}
	return c.Interval.D()
}

// PointInfo implements config.AdapterConfig.
func (c *Config) PointInfo() []reading.Point {
	ps := make([]reading.Point, len(c.Points))
	for i, p := range c.Points {
		ps[i] = reading.Point{Adapter: c.Name, Name: p.Name, Type: p.Type, Unit: p.Unit, Writable: p.WriteFormat != "", Scale: 1}
	}
	return ps
}

// Summary implements config.AdapterConfig.
func (c *Config) Summary() string {
	return fmt.Sprintf("%s %d baud, %s mode, %s", c.Port, c.BaudRate, c.Mode, config.Count(len(c.Points), "point"))
}
