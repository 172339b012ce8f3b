package bench

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/peers"
)

// The outage run: 1,000 registers every 100 ms (10,000 readings a second)
// through a broker of its own, which stops for r.sz.outage.
const (
	outagePoints   = 1000
	outageInterval = 100 * time.Millisecond
)

// footprint measures, for 100 and 1,000 points polled every second in each
// format, the gateway's steady and peak RSS and its CPU time over
// r.sz.footprint; beside them, on a broker of its own, the outage run:
// RSS with the broker up and during the outage, bytes on disk per reading,
// then the drain of what the outage left, with polling counted and the
// latency of the readings polled meanwhile; and the floors of the
// 1,000-point runs: the CPU of bare paho publishing what the json run does,
// and of goburrow/modbus and paho alone moving what the batch runs do,
// without and with making it durable, in one message a cycle or in the
// gateways' ten. The runs share the machine:
// CPU time is counted per process, which the others barely change.
func (r *rig) footprint() {
	type run struct {
		name string
		g    *gw
		mon  *monitor
		u0   usage
	}
	var runs []*run
	for _, points := range []int{100, 1000} {
		for _, format := range formats("json", "batch", "compact") {
			_, addr := device(r.t, points)
			name := fmt.Sprintf("%d points at 1 s, %s", points, format)
			g := r.startGateway(fmt.Sprintf("footprint-%d-%s", points, format), gwConfig{device: addr, points: points,
				interval: "1s", broker: r.broker.URL(), qos: 1, format: format})
			runs = append(runs, &run{name: name, g: g, mon: watch(g.proc.Pid())})
		}
	}
	o := r.startOutage()
	type floor struct {
		name string
		pid  int
		done func()
		cpu0 time.Duration
	}
	floorFor := r.sz.footprintWarm + r.sz.footprint + time.Second
	// The floor of the json runs: paho alone publishing what the 1,000-point
	// gateway does, a burst of 1,000 json messages each second at QoS 1.
	floors := []*floor{{name: "paho alone, 1,000 json messages a second at QoS 1: CPU"}}
	floors[0].pid, floors[0].done = barePublisher(r.t, r.broker.URL(), 1, floorFor, 1000, time.Second)
	// The floors of the batch and compact runs: the Modbus and MQTT
	// libraries alone moving the 1,000 registers each second in one
	// message; the same with the one fdatasync a second that keeping them
	// durable takes; and that in messages of batch_max's default, as the
	// gateways send them. Each polls a device of its own.
	for _, f := range []struct {
		name       string
		log        string
		perMessage int
	}{
		{"goburrow/modbus and paho alone, 1,000 registers a second in one message: CPU", "", 1000},
		{"goburrow/modbus and paho alone, with one fdatasync of the registers a second: CPU", "poller.log", 1000},
		{fmt.Sprintf("the same in messages of %d registers (batch_max's default): CPU", config.DefaultBatchMax), "split.log", config.DefaultBatchMax},
	} {
		if f.log != "" {
			f.log = filepath.Join(r.t.TempDir(), f.log)
		}
		_, dev := device(r.t, 1000)
		x := &floor{name: f.name}
		x.pid, x.done = barePoller(r.t, r.broker.URL(), dev, 1000, floorFor, f.log, f.perMessage)
		floors = append(floors, x)
	}

	time.Sleep(r.sz.footprintWarm) // the runs' warm-up: what follows is the measured window
	for _, x := range runs {
		x.u0 = x.g.usage()
		x.mon.reset()
	}
	for _, f := range floors {
		f.cpu0 = usageOf(r.t, f.pid).cpu
	}
	o.cutAfter(r, r.sz.outageSteady-r.sz.footprintWarm)
	time.Sleep(r.sz.footprint - (r.sz.outageSteady - r.sz.footprintWarm))
	for _, f := range floors {
		r.res.add(f.name, 100*(usageOf(r.t, f.pid).cpu-f.cpu0).Seconds()/r.sz.footprint.Seconds(), "% of a core", "", nil)
	}
	for _, f := range floors {
		f.done()
	}
	for _, x := range runs {
		u1 := x.g.usage()
		_, samples := x.mon.reset()
		x.mon.close()
		cpu := (u1.cpu - x.u0.cpu).Seconds()
		pct := 100 * cpu / r.sz.footprint.Seconds()
		r.res.add(x.name+": CPU per minute", cpu*60/r.sz.footprint.Seconds(), "s", "", nil)
		steady := median(samples)
		switch x.name {
		case "1000 points at 1 s, json":
			r.res.check(x.name+": CPU", pct, "% of a core", "< 1", below(1))
		case "1000 points at 1 s, batch", "1000 points at 1 s, compact":
			r.res.check(x.name+": CPU", pct, "% of a core", "< 0.15", below(0.15))
		default:
			r.res.add(x.name+": CPU", pct, "% of a core", "", nil)
		}
		if x.name[:5] == "1000 " {
			r.res.check(x.name+": steady RSS", steady, "MiB", "< 15", below(15))
		} else {
			r.res.add(x.name+": steady RSS", steady, "MiB", "", nil)
		}
		r.res.add(x.name+": peak RSS", u1.hwm, "MiB", "", nil)
		x.g.stop()
	}
	o.finish(r)
}

// backlogSeries is the upstream's backlog: the buffer's next seq less it
// is the upstream's cursor.
const backlogSeries = `fieldgate_upstream_backlog{upstream="local"}`

// outage is the outage run in progress.
type outage struct {
	broker *peers.Mosquitto
	g      *gw
	mon    *monitor
	reads  func() int
	steady float64
	start  time.Time // when the broker stopped
}

func (r *rig) startOutage() *outage {
	broker := peers.StartMosquitto(r.t, peers.MosquittoOptions{})
	bank, addr := device(r.t, outagePoints)
	g := r.startGateway("outage", gwConfig{device: addr, points: outagePoints, interval: outageInterval.String(),
		broker: broker.URL(), qos: 1, format: "json"})
	return &outage{broker: broker, g: g, mon: watch(g.proc.Pid()), reads: bank.Reads}
}

// cutAfter lets the gateway run connected for d more, takes its steady
// RSS, and stops the broker.
func (o *outage) cutAfter(r *rig, d time.Duration) {
	time.Sleep(d) // connected: the steady state being measured
	_, samples := o.mon.reset()
	o.steady = median(samples[len(samples)/2:]) // the later half: past start-up
	r.res.add("outage run (10,000 readings/s, json): RSS connected", o.steady, "MiB", "", nil)
	o.broker.Stop()
	o.start = time.Now()
}

// finish ends the outage once it has lasted r.sz.outage, brings the broker
// back and measures the drain.
func (o *outage) finish(r *rig) {
	time.Sleep(time.Until(o.start.Add(r.sz.outage))) // the outage's length is what is measured
	highest, _ := o.mon.reset()
	r.res.check("outage run: highest RSS during the outage, over connected", highest-o.steady, "MiB", "≤ 5", atMost(5))
	m := o.g.metrics("fieldgate_buffer_next_seq", "fieldgate_buffer_first_seq", "fieldgate_buffer_bytes", backlogSeries)
	next, first, bytes, backlog := m[0], m[1], m[2], m[3]
	r.res.check("bytes on disk per reading (the outage run's buffer)", float64(bytes)/float64(next-first), "B", "≤ 12.5", atMost(12.5))

	o.broker.Start()
	sub := subscribe(r.t, o.broker.URL(), "json", 1)
	sub.liveFrom = next
	sub.record(true)
	back, reads0 := time.Now(), o.reads()
	o.g.awaitMetrics(r.sz.drainLimit, func(m []uint64) bool {
		return m[0]-m[1] >= next // the cursor has passed every reading of the outage
	}, "fieldgate_buffer_next_seq", backlogSeries)
	took := time.Since(back)
	cycles := (o.reads() - reads0) / 8 // 1,000 registers: eight requests a cycle
	live := sub.record(false)
	u := o.g.usage()
	o.mon.close()
	o.g.stop()
	sub.client.Disconnect(50)
	r.res.add(fmt.Sprintf("outage run: drain of the outage's %d readings", backlog), took.Seconds(), "s", "", nil)
	r.keptCycles("outage run: drain", cycles, took, outageInterval)
	r.res.add("outage run: peak RSS", u.hwm, "MiB", "", nil)
	if len(live) > 0 {
		r.res.add("outage run: p99 latency of readings polled during the drain", ms(percentile(live, 0.99)), "ms", "", nil)
	}
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	return s[len(s)/2]
}
