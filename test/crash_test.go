package test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/test/modbussim"
	"github.com/fieldgate/fieldgate/test/peers"
)

// loadPoints configures n holding registers, 0 to n-1, as points p0…, and
// fills them.
func loadPoints(bank *modbussim.Bank, n int) string {
	var b strings.Builder
	for i := range n {
		bank.SetHolding(uint16(i), uint16(i))
		fmt.Fprintf(&b, "  [[modbus.point]]\n  name = \"p%d\"\n  table = \"holding_register\"\n  address = %d\n", i, i)
	}
	return b.String()
}

// observedConfig is config with the buffer's fsync mode, metrics on a free
// loopback port (returned) and logging at info.
func observedConfig(t *testing.T, upstreams, addr, interval, points, fsync string) (text, metrics string) {
	metrics = peers.FreeAddr(t)
	text = config(t.TempDir(), upstreams, addr, interval, points)
	text = strings.Replace(text, `log_level = "debug"`, fmt.Sprintf("log_level = \"info\"\nmetrics_listen = %q", metrics), 1)
	text = strings.Replace(text, `fsync = "interval"`, fmt.Sprintf("fsync = %q", fsync), 1)
	return text, metrics
}

// seed returns the random seed of a test, from FIELDGATE_SEED to replay a
// run, and logs it.
func seed(t *testing.T) uint64 {
	s, err := strconv.ParseUint(os.Getenv("FIELDGATE_SEED"), 10, 64)
	if err != nil {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (FIELDGATE_SEED replays it)", s)
	return s
}

// within returns a random duration in [0, d).
func within(rng *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(d)))
}

// flapBroker stops and starts the broker at random moments, each state
// lasting from most/10 to most, until the returned function is called,
// which leaves the broker running. rng is the flapping's own.
func flapBroker(broker *peers.Mochi, rng *rand.Rand, most time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for up := true; ; up = !up {
			t := time.NewTimer(most/10 + within(rng, most*9/10))
			select {
			case <-done:
				t.Stop()
				broker.Start()
				return
			case <-t.C:
			}
			if up {
				broker.Stop()
			} else {
				broker.Start()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// TestProcessCrashes kills the real binary with SIGKILL at random moments
// while it polls 2,000 readings/s into a broker that comes and goes, at
// least 50 times per fsync mode (SPEC §4.1): every restart starts cleanly,
// and across the run the broker receives every seq from first to last, each
// always with the same reading (a seq is never reused).
func TestProcessCrashes(t *testing.T) {
	cycles := 50
	if testing.Short() {
		cycles = 10
	}
	bin, err := plainBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"always", "interval", "never"} {
		t.Run(mode, func(t *testing.T) {
			s := seed(t)
			rng := rand.New(rand.NewPCG(s, 0))
			broker := peers.StartMochi(t)
			bank, dev := device(t)
			text, metrics := observedConfig(t, upstream("local", broker.URL()), dev.Addr, "10ms", loadPoints(bank, 20), mode)
			cfg := writeConfig(t, text)
			stopFlapping := flapBroker(broker, rand.New(rand.NewPCG(s, 1)), 800*time.Millisecond)
			early := 0
			for range cycles {
				g := startBinary(t, bin, cfg)
				if rng.IntN(5) == 0 { // during start-up: opening and recovering the buffer
					early++
					time.Sleep(within(rng, 50*time.Millisecond)) // the moment of the kill, not synchronisation
				} else {
					g.waitLog("fieldgate started")
					time.Sleep(within(rng, 400*time.Millisecond))
				}
				select {
				case <-g.proc.Done():
					t.Fatalf("the gateway exited by itself:\n%s", g.logs)
				default:
				}
				g.kill9()
				if line := errorLine(g.logs); line != "" {
					t.Fatalf("a restart logged an error: %s", line)
				}
			}
			stopFlapping()
			t.Logf("%d kills (%d during start-up), %d polls", cycles, early, bank.Reads())

			// A last run, with the device gone so the buffer ends, delivers
			// the backlog.
			if err := dev.Stop(); err != nil {
				t.Fatal(err)
			}
			g := startBinary(t, bin, cfg)
			g.waitLog("serving metrics")
			next := awaitDelivered(t, metrics, "local")
			max := checkDelivery(t, broker.Received.All())
			if max != next-1 {
				t.Fatalf("the broker's highest seq is %d, the buffer's last %d", max, next-1)
			}
			t.Logf("every seq from 1 to %d delivered", max)
			if code := g.stop(); code != 0 {
				t.Errorf("clean stop exited %d", code)
			}
		})
	}
}

// errorLine returns the first line a gateway logged at level ERROR, if any.
func errorLine(logs *peers.Lines) string {
	lines, _ := logs.Since(0)
	for _, l := range lines {
		if strings.Contains(l, "level=ERROR") {
			return l
		}
	}
	return ""
}

// scrape reads the gateway's /metrics into a map from each series (name
// and labels, as written) to its value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	_, body := get(t, "http://"+addr+"/metrics")
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		series, value := line[:i], line[i+1:]
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[series] = v
	}
	return out
}

// awaitDelivered waits until the upstream has every reading the buffer
// holds, and returns the buffer's next seq; the gateway must be taking no
// more readings.
func awaitDelivered(t *testing.T, metrics, upstream string) uint64 {
	t.Helper()
	backlog := fmt.Sprintf("fieldgate_upstream_backlog{upstream=%q}", upstream)
	deadline := time.Now().Add(3 * wait)
	for {
		m := scrape(t, metrics)
		if b, ok := m[backlog]; ok && b == 0 {
			return uint64(m["fieldgate_buffer_next_seq"])
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog still %v after %v", m[backlog], 3*wait)
		}
		time.Sleep(100 * time.Millisecond) // the metric has no event to await
	}
}

// checkDelivery checks the readings the broker received: every seq from 1
// to the highest, first copies in order, and each copy of a seq the same
// reading on the same topic. It returns the highest seq.
func checkDelivery(t *testing.T, ms []peers.Message) uint64 {
	t.Helper()
	return checkDeliveryFrom(t, ms, 1)
}

// checkDeliveryFrom is checkDelivery for the seqs from first on: those
// before it may have been evicted.
func checkDeliveryFrom(t *testing.T, ms []peers.Message, first uint64) uint64 {
	t.Helper()
	copies := map[uint64]string{} // the first copy of each seq
	var got []uint64
	for _, m := range ms {
		rest, ok := strings.CutPrefix(m.Topic, prefix+"/")
		if !ok || strings.Count(rest, "/") != 1 || strings.HasSuffix(rest, "/status") {
			continue
		}
		r := readingOf(t, m)
		id := fmt.Sprintf("%s %v %s", m.Topic, r.Value, r.TS)
		if was, ok := copies[r.Seq]; ok && was != id {
			t.Fatalf("seq %d reused: %s, then %s", r.Seq, was, id)
		}
		copies[r.Seq] = id
		got = append(got, r.Seq)
	}
	return checkRun(t, got, first)
}
