package bench

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/goburrow/modbus"

	"github.com/fieldgate/fieldgate/internal/durable"
)

// pollerEnv carries the bare poller's orders to the test binary run as a
// helper process: broker URL, device host:port, points, seconds to run,
// the file each cycle's registers are made durable in ("" for none) and
// the most registers a message carries.
const pollerEnv = "FIELDGATE_BENCH_POLLER"

// barePoller starts the bare poller on device for d and returns its pid
// and a wait for its end. With a log file named, each cycle's registers
// are written to it and fdatasynced before they are published. Each
// cycle's registers go in messages of at most perMessage.
func barePoller(t testing.TB, broker, device string, points int, d time.Duration, log string, perMessage int) (pid int, wait func()) {
	t.Helper()
	return helper(t, "TestBarePoller", fmt.Sprintf("%s=%s,%s,%d,%g,%s,%d", pollerEnv, broker, device, points, d.Seconds(), log, perMessage), time.Second)
}

// TestBarePoller is the floor of the batch runs, run by the harness as a
// process of its own: goburrow/modbus and paho.mqtt.golang with nothing
// between them, reading the device's registers each second in requests of
// 125 and publishing them at QoS 1 in messages of at most the registers
// it is told (all of a cycle's in flight at once). No buffer, no status,
// no metrics: what any gateway built on these two libraries spends at
// least to move the 1,000-point batch run's readings. Told a log file, it
// also writes each cycle's raw registers there and fdatasyncs them before
// publishing: the least any gateway keeping SPEC §4.2 (a power cut loses
// at most fsync_interval of readings) adds to that.
func TestBarePoller(t *testing.T) {
	orders := os.Getenv(pollerEnv)
	if orders == "" {
		t.Skip("the bare poller runs as a helper process of TestBench")
	}
	f := strings.Split(orders, ",")
	points, _ := strconv.Atoi(f[2])
	secs, _ := strconv.ParseFloat(f[3], 64)
	perMessage, _ := strconv.Atoi(f[5])
	c := paho.NewClient(paho.NewClientOptions().AddBroker(f[0]).SetClientID(fmt.Sprintf("bench-poller-%d", os.Getpid())).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	h := modbus.NewTCPClientHandler(f[1])
	h.SlaveId, h.Timeout = 1, time.Second
	if err := h.Connect(); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dev := modbus.NewClient(h)
	var log durable.File
	if f[4] != "" {
		var err error
		if log, err = durable.OS.OpenFile(f[4], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			t.Fatal(err)
		}
		defer log.Close()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	var raw []byte
	var payloads [][]byte // one a message, reused: each cycle waits for its messages' acknowledgements
	var toks []paho.Token
	for now := time.Now(); now.Before(deadline); now = <-tick.C {
		raw = binary.BigEndian.AppendUint64(raw[:0], uint64(now.UnixMilli()))
		for at := 0; at < points; at += 125 {
			regs, err := dev.ReadHoldingRegisters(uint16(at), uint16(min(125, points-at)))
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, regs...)
		}
		if log != nil {
			if _, err := log.Write(raw); err != nil {
				t.Fatal(err)
			}
			if err := log.Datasync(); err != nil {
				t.Fatal(err)
			}
		}
		regs := raw[8:]
		toks = toks[:0]
		for m, first := 0, 0; first < points; m, first = m+1, first+perMessage {
			if m == len(payloads) {
				payloads = append(payloads, nil)
			}
			p := now.UTC().AppendFormat(append(payloads[m][:0], `{"ts":"`...), "2006-01-02T15:04:05.000Z")
			p = append(p, `","values":[`...)
			for i := first; i < min(points, first+perMessage); i++ {
				if i > first {
					p = append(p, ',')
				}
				p = strconv.AppendUint(p, uint64(binary.BigEndian.Uint16(regs[2*i:])), 10)
			}
			p = append(p, "]}"...)
			payloads[m] = p
			toks = append(toks, c.Publish(prefix+"/"+adapter, 1, false, p))
		}
		for _, tok := range toks {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
	}
}
