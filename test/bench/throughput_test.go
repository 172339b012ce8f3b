package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sys/unix"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/peers"
)

// throughputPoints is the device of the throughput runs, polled as fast as
// it answers (every throughputInterval).
const (
	throughputPoints   = 200
	throughputInterval = time.Millisecond
)

// ceilingEnv carries the ceiling publisher's orders to the test binary run
// as a helper process: broker URL, QoS, seconds to publish, and the
// messages of a burst and the period of bursts (0: flat out).
const ceilingEnv = "FIELDGATE_BENCH_CEILING"

// throughput measures, per QoS and round, the ceiling and the gateway's
// json stream next to it; then the batch and compact formats flat out at
// QoS 1, against the same round's QoS 1 ceiling.
func (r *rig) throughput() {
	ceilings := map[byte][]float64{}
	ratios := map[byte][]float64{}
	rates := map[string][]float64{}
	polled := map[byte][]float64{}
	for range r.rounds {
		for _, qos := range []byte{0, 1, 2} {
			c := r.ceiling(qos)
			fg, p := r.flatOut("json", qos)
			ceilings[qos] = append(ceilings[qos], c)
			ratios[qos] = append(ratios[qos], fg/c)
			rates["json"+strconv.Itoa(int(qos))] = append(rates["json"+strconv.Itoa(int(qos))], fg)
			polled[qos] = append(polled[qos], p)
		}
		for _, f := range formats(flatFormats...) {
			fg, _ := r.flatOut(f, 1)
			rates[f] = append(rates[f], fg)
			ratios[f2q(f)] = append(ratios[f2q(f)], fg/ceilings[1][len(ceilings[1])-1])
		}
	}
	r.ceilingQoS1 = median(ceilings[1])
	for _, qos := range []byte{0, 1, 2} {
		q := fmt.Sprintf("QoS %d", qos)
		r.res.addRange("ceiling "+q+" (bare paho → Mosquitto → subscriber)", ceilings[qos], "msg/s", "", nil)
		r.res.addRange("throughput json "+q, rates["json"+strconv.Itoa(int(qos))], "readings/s", "", nil)
		r.res.addRange("throughput json "+q+" / ceiling", ratios[qos], "×", "≥ 0.8", atLeast(0.8))
		r.res.addRange("polled during json "+q, polled[qos], "readings/s", "", nil)
	}
	r.res.addRange("Modbus requests per poll cycle (200 registers; 125 a request at most)", r.requests, "", "= 2", func(v float64) bool { return v > 1.99 && v < 2.01 })
	for _, f := range formats(flatFormats...) {
		r.res.addRange("throughput "+f+" QoS 1", rates[f], "readings/s", "", nil)
		r.res.addRange("throughput "+f+" QoS 1 / ceiling", ratios[f2q(f)], "×", "", nil)
	}
}

// f2q gives the flat-out formats a key of their own among the QoS ratios.
func f2q(format string) byte { return map[string]byte{"batch": 10, "compact": 11}[format] }

func atLeast(v float64) func(float64) bool { return func(x float64) bool { return x >= v } }
func below(v float64) func(float64) bool   { return func(x float64) bool { return x < v } }

// ceiling runs the bare publisher in a process of its own and returns what
// the subscriber received per second in the window.
func (r *rig) ceiling(qos byte) float64 {
	r.t.Helper()
	sub := subscribe(r.t, r.broker.URL(), "json", qos)
	_, wait := barePublisher(r.t, r.broker.URL(), qos, r.sz.warm+r.sz.window+time.Second, 0, 0)
	rate := measure(r.sz.warm, r.sz.window, sub.readings.Load)[0]
	wait()
	sub.client.Disconnect(50)
	return rate
}

// barePublisher starts the ceiling's publisher in a process of its own,
// publishing for d: burst messages every period, or flat out if burst is
// 0, beside the throughput runs. It returns the process's pid and a wait
// for its end.
func barePublisher(t testing.TB, broker string, qos byte, d time.Duration, burst int, period time.Duration) (pid int, wait func()) {
	t.Helper()
	pace := period
	if burst == 0 {
		pace = throughputInterval
	}
	return helper(t, "TestCeilingPublisher", fmt.Sprintf("%s=%s,%d,%g,%d,%s", ceilingEnv, broker, qos, d.Seconds(), burst, period), pace)
}

// helper runs the test named test of this binary in a process of its own,
// with env added to its environment, and returns the process's pid and a
// wait for its end that fails t if the helper failed. Helpers run on one
// core and with the timer slack a gateway polling every pace has by
// default (cmd/fieldgate oneCore, config.AutoTimerSlack), so a floor or
// ceiling and the gateway beside it share the runtime's and the kernel's
// settings.
func helper(t testing.TB, test, env string, pace time.Duration) (pid int, wait func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env, "GOMAXPROCS=1")
	var out peers.Lines
	cmd.Stdout, cmd.Stderr = &out, &out
	// A new process starts with the slack of the thread that forks it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(config.AutoTimerSlack(pace)), 0, 0, 0); err != nil {
		t.Fatalf("timer slack: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0) // the thread's own again
	proc, err := peers.StartProcess(t, cmd, &out, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return proc.Pid(), func() {
		t.Helper()
		if err := proc.Err(); err != nil {
			t.Fatalf("%s: %v\n%s", test, err, &out)
		}
	}
}

// flatOut runs the gateway on the throughput device with format at qos
// and returns the readings per second delivered and polled in the window.
func (r *rig) flatOut(format string, qos byte) (delivered, polled float64) {
	r.t.Helper()
	bank, addr := device(r.t, throughputPoints)
	sub := subscribe(r.t, r.broker.URL(), format, qos)
	g := r.startGateway(fmt.Sprintf("throughput-%s-qos%d", format, qos), gwConfig{
		device: addr, points: throughputPoints, interval: throughputInterval.String(), broker: r.broker.URL(), qos: int(qos), format: format,
	})
	polledSeries := fmt.Sprintf("fieldgate_readings_total{adapter=%q}", adapter)
	rates := measure(r.sz.warm, r.sz.window, sub.readings.Load, func() int64 { return int64(g.metrics(polledSeries)[0]) },
		func() int64 { return int64(bank.Reads()) })
	g.stop()
	sub.client.Disconnect(50)
	r.requests = append(r.requests, rates[2]/rates[1]*throughputPoints)
	return rates[0], rates[1]
}

// measure waits warm, then returns the growth of each count per second
// over window.
func measure(warm, window time.Duration, counts ...func() int64) []float64 {
	time.Sleep(warm) // the warm-up and the window are what is measured, not events
	start := time.Now()
	n0 := make([]int64, len(counts))
	for i, c := range counts {
		n0[i] = c()
	}
	time.Sleep(window)
	el := time.Since(start).Seconds()
	rates := make([]float64, len(counts))
	for i, c := range counts {
		rates[i] = float64(c()-n0[i]) / el
	}
	return rates
}

// TestCeilingPublisher is the ceiling's publisher, run by the harness as a
// process of its own: bare paho.mqtt.golang with its defaults, publishing
// json readings like the gateway's on the same 200 topics, with the
// gateway's in-flight window (128 messages, 16 at QoS 2): flat out, the
// payloads prepared in advance; or paced, a burst each period, each
// reading stamped with its burst's start as the gateway stamps a poll's.
func TestCeilingPublisher(t *testing.T) {
	orders := os.Getenv(ceilingEnv)
	if orders == "" {
		t.Skip("the ceiling's publisher runs as a helper process of TestBench")
	}
	f := strings.Split(orders, ",")
	qos64, _ := strconv.ParseUint(f[1], 10, 8)
	secs, _ := strconv.ParseFloat(f[2], 64)
	burst, _ := strconv.Atoi(f[3])
	period, _ := time.ParseDuration(f[4])
	qos := byte(qos64)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(f[0]).SetClientID("bench-ceiling").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	const pool = 4096
	type msg struct {
		topic   string
		payload []byte
	}
	msgs := make([]msg, pool)
	stamp := func() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }
	payload := func(i int, ts string) []byte {
		return fmt.Appendf(nil, `{"value":%d,"ts":"%s","seq":%d}`, 97*(i%throughputPoints)%10000, ts, 1_000_000+i)
	}
	ts := stamp()
	for i := range msgs {
		msgs[i] = msg{fmt.Sprintf("%s/%s/p%d", prefix, adapter, i%throughputPoints), payload(i, ts)}
	}
	window := 128
	if qos == 2 {
		window = 16
	}
	ring := make([]paho.Token, 0, window)
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	var next <-chan time.Time // paced: the next burst's start
	if burst > 0 {
		tick := time.NewTicker(period)
		defer tick.Stop()
		next = tick.C
	}
	sent := 0
	for time.Now().Before(deadline) {
		m := msgs[sent%pool]
		if burst > 0 {
			if sent%burst == 0 {
				if sent > 0 {
					<-next
				}
				ts = stamp()
			}
			m.payload = payload(sent, ts)
		}
		if len(ring) == window {
			ring[0].Wait()
			if err := ring[0].Error(); err != nil {
				t.Fatal(err)
			}
			ring = append(ring[:0], ring[1:]...)
		}
		ring = append(ring, c.Publish(m.topic, qos, false, m.payload))
		sent++
	}
	for _, tok := range ring {
		tok.Wait()
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "published %d\n", sent)
	_ = w.Flush()
}

// flatFormats are measured flat out at QoS 1 beside json.
var flatFormats = []string{"batch", "compact"}
