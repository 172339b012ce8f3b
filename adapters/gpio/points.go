package gpio

import (
	"errors"
	"fmt"
	"time"

	"github.com/warthog618/go-gpiocdev"

	"github.com/fieldgate/fieldgate/adapters"
)

// point is one configured line, checked and translated to gpiocdev terms.
type point struct {
	name      string
	index     int // position in Adapter.points and session.lines
	offset    int
	output    bool
	edge      gpiocdev.LineEdge
	debounce  time.Duration
	bias      gpiocdev.LineBias
	activeLow bool
	interval  time.Duration       // inputs: heartbeat period, 0 for none
	counter   bool                // inputs: publish the count of rising edges, not the level
	gate      *adapters.WriteGate // outputs: min_write_interval

	// level is what an output is driven to when its line is requested:
	// initial at first, then the last level written, so a chip that comes
	// back after a fault resumes the commanded state. Guarded by Adapter.mu.
	level bool
}

var (
	edges = map[string]gpiocdev.LineEdge{
		"":        gpiocdev.WithBothEdges, // SPEC: inputs publish on each edge by default
		"none":    gpiocdev.WithoutEdges,
		"rising":  gpiocdev.WithRisingEdge,
		"falling": gpiocdev.WithFallingEdge,
		"both":    gpiocdev.WithBothEdges,
	}
	biases = map[string]gpiocdev.LineBias{
		"":          gpiocdev.WithBiasAsIs,
		"as_is":     gpiocdev.WithBiasAsIs,
		"disabled":  gpiocdev.WithBiasDisabled,
		"pull_up":   gpiocdev.WithPullUp,
		"pull_down": gpiocdev.WithPullDown,
	}
)

// parsePoints checks a [[gpio]] section's points and reports every problem,
// each naming the adapter and the point.
func parsePoints(cfg *Config) ([]*point, error) {
	var errs []error
	fail := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("gpio %q point %q: %s", cfg.Name, name, fmt.Sprintf(format, args...)))
	}
	if cfg.Chip == "" {
		errs = append(errs, fmt.Errorf("gpio %q: chip is required (a name such as gpiochip0 or a label such as pinctrl-rp1)", cfg.Name))
	}
	if len(cfg.Points) == 0 {
		errs = append(errs, fmt.Errorf("gpio %q: no points", cfg.Name))
	}
	names := map[string]bool{}
	lines := map[int]string{}
	points := make([]*point, 0, len(cfg.Points))
	for i, c := range cfg.Points {
		p := &point{name: c.Name, index: i, offset: c.Line, activeLow: c.ActiveLow,
			debounce: c.Debounce.D(), interval: c.Interval.D(), counter: c.Counter, level: c.Initial,
			gate: adapters.NewWriteGate(c.MinWriteInterval.D())}
		if names[c.Name] {
			fail(c.Name, "duplicate point name")
		}
		names[c.Name] = true
		if other, dup := lines[c.Line]; dup {
			fail(c.Name, "line %d is already point %q", c.Line, other)
		}
		lines[c.Line] = c.Name
		if c.Line < 0 {
			fail(c.Name, "line %d is negative", c.Line)
		}
		var ok bool
		if p.bias, ok = biases[c.Bias]; !ok {
			fail(c.Name, "unknown bias %q (as_is | disabled | pull_up | pull_down)", c.Bias)
		}
		switch p.edge, ok = edges[c.Edge]; {
		case !ok:
			fail(c.Name, "unknown edge %q (none | rising | falling | both)", c.Edge)
		case c.Counter && c.Edge == "":
			p.edge = gpiocdev.WithRisingEdge
		case c.Counter && p.edge != gpiocdev.WithRisingEdge && p.edge != gpiocdev.WithBothEdges:
			fail(c.Name, "a counter counts rising edges: edge must be rising or both, not %q", c.Edge)
		}
		if p.debounce < 0 || p.interval < 0 {
			fail(c.Name, "negative debounce or interval")
		}
		switch c.Direction {
		case "", "input":
			if c.Initial {
				fail(c.Name, "initial applies to outputs only")
			}
		case "output":
			p.output = true
			if c.Edge != "" && c.Edge != "none" || c.Debounce != 0 || c.Interval != 0 || c.Counter {
				fail(c.Name, "edge, debounce, interval and counter apply to inputs only")
			}
		default:
			fail(c.Name, "unknown direction %q (input | output)", c.Direction)
		}
		points = append(points, p)
	}
	return points, errors.Join(errs...)
}

// requestOptions are the gpiocdev options that configure p's line; onEdge
// receives its events (inputs with edge detection only).
func (p *point) requestOptions(onEdge gpiocdev.EventHandler) []gpiocdev.LineReqOption {
	var opts []gpiocdev.LineReqOption
	if p.activeLow {
		opts = append(opts, gpiocdev.AsActiveLow)
	}
	if p.bias != gpiocdev.WithBiasAsIs {
		opts = append(opts, p.bias)
	}
	if p.output {
		return append(opts, gpiocdev.AsOutput(boolInt(p.level)))
	}
	opts = append(opts, gpiocdev.AsInput)
	if p.debounce > 0 {
		opts = append(opts, gpiocdev.WithDebounce(p.debounce))
	}
	if p.edge != gpiocdev.WithoutEdges {
		opts = append(opts, p.edge, gpiocdev.WithEventHandler(onEdge))
	}
	return opts
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
