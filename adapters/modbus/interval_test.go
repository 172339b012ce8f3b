package modbus

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/modbussim"
)

// readCounter is a Recorder that notes, at each status, how many read
// requests the server has answered: a cycle's requests are all answered
// before its status, and the next cycle's sent after it.
type readCounter struct {
	adapterstest.Recorder
	bank  *modbussim.Bank
	mu    sync.Mutex
	reads []int // at each status
}

func (r *readCounter) Status(err error) {
	r.mu.Lock()
	r.reads = append(r.reads, r.bank.Reads())
	r.mu.Unlock()
	r.Recorder.Status(err)
}

// TestPointIntervals polls a 200 ms point and two 1 s points, one beside
// it and one far away, from an adapter whose own interval is 1 h: the fast
// point is read five times as often as the slow ones, every cycle of a
// slow point reads the fast one too, and the server sees the coalesced
// minimum of requests: one in a cycle of the fast point alone, two (the
// neighbours merged, the far point alone) in a cycle of all three.
func TestPointIntervals(t *testing.T) {
	bank := modbussim.NewBank()
	srv := serve(t, bank, "127.0.0.1:0").Addr
	every := func(d time.Duration) func(*PointConfig) {
		return func(p *PointConfig) { p.Interval = config.Duration(d) }
	}
	cfg := deviceConfig("tcp://"+srv, time.Hour,
		pt("fast", HoldingRegister, 0, "uint16", every(200*time.Millisecond)),
		pt("slow", HoldingRegister, 1, "uint16", every(time.Second)),
		pt("far", HoldingRegister, 100, "uint16", every(time.Second)))
	a, err := New(cfg, adapters.Env{Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	rec := &readCounter{bank: bank}
	adapterstest.Run(t, a, rec)

	// Three slow cycles: the first at start, two more a second apart.
	slow := 0
	for slow < 3 {
		c := rec.NextCycle(t)
		if c.Err != nil {
			t.Fatalf("status %v", c.Err)
		}
		if _, ok := c.Value("slow"); ok {
			slow++
		}
	}
	cycles := rec.Cycles()
	rec.mu.Lock()
	reads := rec.reads[:len(cycles)]
	rec.mu.Unlock()
	fast, prev := 0, 0
	for i, c := range cycles {
		_, f := c.Value("fast")
		_, s := c.Value("slow")
		_, far := c.Value("far")
		if f {
			fast++
		}
		want := 1
		switch {
		case s != far || (s && !f):
			t.Errorf("cycle %d read fast %t, slow %t, far %t: the 1 s points fall due with each other and with the 200 ms one", i, f, s, far)
		case s:
			want = 2
		}
		if n := reads[i] - prev; n != want {
			t.Errorf("cycle %d (fast %t, slow %t) sent %d requests, want %d", i, f, s, n, want)
		}
		prev = reads[i]
		for _, r := range c.Readings {
			if r.Time.IsZero() {
				t.Errorf("cycle %d: reading %s without its time", i, r.Point)
			}
		}
	}
	// Between the first and the third slow cycle lie two seconds: ten fast
	// ticks, fewer only when the machine was too loaded to keep a tick
	// (the adapter skips ticks it missed).
	if fast < 8 || fast > 11 {
		t.Errorf("fast point read %d times against the slow point's 3, want 11 (8 at least)", fast)
	}
	t.Logf("%d cycles, fast read %d times, slow 3 times, %d requests", len(cycles), fast, reads[len(reads)-1])
}

// TestPointIntervalConfig: a point's interval is optional, and when given
// must be more than 0; unset, the point polls at the adapter's.
func TestPointIntervalConfig(t *testing.T) {
	const block = "[[modbus]]\nname = \"m\"\nurl = \"tcp://127.0.0.1:502\"\ninterval = \"5s\"\n  [[modbus.point]]\n  name = \"p\"\n  table = \"coil\"\n"
	c := mustLoadConfig(t, block)
	a, err := New(c, adapters.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if p := a.configured[0]; c.Points[0].Interval != 0 || p.every != 5*time.Second {
		t.Errorf("point interval %v, polled every %v; want unset and the adapter's 5s", c.Points[0].Interval, p.every)
	}
	_, err = loadConfig(t, block+"  interval = \"0s\"\n")
	if err == nil || !strings.Contains(err.Error(), `modbus "m" point "p": interval must be more than 0`) {
		t.Errorf("interval 0s: %v", err)
	}
}

// TestPaceFollowsTheFastestPoint: an adapter reports a status each cycle,
// which comes at its fastest point's interval; one with only SunSpec
// discovery, at each retry of a discovery that fails.
func TestPaceFollowsTheFastestPoint(t *testing.T) {
	fast := pt("fast", HoldingRegister, 0, "uint16", func(p *PointConfig) { p.Interval = config.Duration(200 * time.Millisecond) })
	cfg := deviceConfig("tcp://127.0.0.1:502", time.Hour, fast)
	cfg.Timeout = config.Duration(100 * time.Millisecond)
	a, err := New(cfg, adapters.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if p := a.Pace(); p != 600*time.Millisecond {
		t.Errorf("pace %v, want 600ms: three times the fastest point's interval", p)
	}
	a, err = New(sunspecConfig("tcp://127.0.0.1:502"), adapters.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if p := a.Pace(); p < 3*defaultPace.max {
		t.Errorf("SunSpec-only pace %v, want at least three of its discovery retries (%v)", p, defaultPace.max)
	}
}
