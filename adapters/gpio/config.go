package gpio

import (
	"fmt"
	"time"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// Config is one [[gpio]] table: lines of one chip.
type Config struct {
	Name   string        `toml:"name"`
	Chip   string        `toml:"chip"` // name (gpiochip0) or label (pinctrl-rp1)
	Points []PointConfig `toml:"point"`
}

// PointConfig is one [[gpio.point]]: one line.
type PointConfig struct {
	Name      string          `toml:"name"`
	Line      int             `toml:"line"`
	Direction string          `toml:"direction"` // input | output
	Edge      string          `toml:"edge"`      // none | rising | falling | both; default both for inputs (rising for counters), none for outputs
	Debounce  config.Duration `toml:"debounce"`
	Bias      string          `toml:"bias"` // as_is | disabled | pull_up | pull_down; default as_is
	ActiveLow bool            `toml:"active_low"`
	Interval  config.Duration `toml:"interval"`
	Initial   bool            `toml:"initial"`
	Counter   bool            `toml:"counter"` // inputs: publish the persisted count of rising edges instead of the level
	Unit      string          `toml:"unit"`
	// MinWriteInterval refuses commands to an output closer together than
	// this; default config.OnOffWriteInterval.
	MinWriteInterval config.Duration `toml:"min_write_interval"`
}

// maxLine bounds a line offset; chips have tens or hundreds of lines.
const maxLine = 65535

// AdapterName implements config.AdapterConfig.
func (c *Config) AdapterName() string { return c.Name }

// Check implements config.AdapterConfig.
func (c *Config) Check(ck *config.Check) {
	if len(c.Points) == 0 {
		ck.NoPoints()
	}
	ck.Required(c.Chip, "chip")
	for i := range c.Points {
		pt := &c.Points[i]
		p := ck.Point(i, pt.Name)
		if pt.Line < 0 || pt.Line > maxLine {
			p.Errorf("line", "line %d out of range 0..%d", pt.Line, maxLine)
		} else {
			p.Claim("line", fmt.Sprintf("gpio %s %d", c.Chip, pt.Line), fmt.Sprintf("line %d of %s", pt.Line, c.Chip))
		}
		p.Choice(&pt.Direction, "direction", "", "input", "output")
		edge := "both"
		switch {
		case pt.Direction == "output":
			edge = "none"
		case pt.Counter:
			edge = "rising"
		}
		p.Choice(&pt.Edge, "edge", edge, "none", "rising", "falling", "both")
		switch {
		case pt.Direction == "output" && pt.Counter:
			p.Errorf("counter", "counter is for inputs only")
		case pt.Direction == "output" && pt.Edge != "none":
			p.Errorf("edge", "edge is for inputs only")
		case pt.Counter && pt.Edge != "rising" && pt.Edge != "both":
			p.Errorf("edge", "a counter counts rising edges: edge must be rising or both, not %q", pt.Edge)
		}
		p.Choice(&pt.Bias, "bias", "as_is", "as_is", "disabled", "pull_up", "pull_down")
		p.WriteInterval(&pt.MinWriteInterval, "min_write_interval", pt.Direction == "output")
	}
}

// PollInterval implements config.AdapterConfig: the shortest of the
// inputs' publishing intervals; edges come when they come.
func (c *Config) PollInterval() time.Duration {
	var d time.Duration
	for _, p := range c.Points {
		d = config.Sooner(d, p.Interval.D())
	}
	return d
}

// PointInfo implements config.AdapterConfig: lines are bools, counters
// uint64 totals.
func (c *Config) PointInfo() []reading.Point {
	ps := make([]reading.Point, len(c.Points))
	for i, p := range c.Points {
		typ := "bool"
		if p.Counter {
			typ = "uint64"
		}
		ps[i] = reading.Point{Adapter: c.Name, Name: p.Name, Type: typ, Unit: p.Unit, Writable: p.Direction == "output", Scale: 1}
	}
	return ps
}

// Summary implements config.AdapterConfig.
func (c *Config) Summary() string {
	return fmt.Sprintf("%s, %s", c.Chip, config.Count(len(c.Points), "point"))
}
