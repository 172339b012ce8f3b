package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/goburrow/modbus"
)

// pollerEnv carries the bare poller's orders to the test binary run as a
// helper process: broker URL, device host:port, points and seconds to run.
const pollerEnv = "FIELDGATE_BENCH_POLLER"

// barePoller starts the bare poller on device for d and returns its pid
// and a wait for its end.
func barePoller(t testing.TB, broker, device string, points int, d time.Duration) (pid int, wait func()) {
	t.Helper()
	return helper(t, "TestBarePoller", fmt.Sprintf("%s=%s,%s,%d,%g", pollerEnv, broker, device, points, d.Seconds()))
}

// TestBarePoller is the floor of the batch runs, run by the harness as a
// process of its own: goburrow/modbus and paho.mqtt.golang with nothing
// between them, reading the device's registers each second in requests of
// 125 and publishing them as one message at QoS 1. No buffer, no status,
// no metrics: what any gateway built on these two libraries spends at
// least to move the 1,000-point batch run's readings.
func TestBarePoller(t *testing.T) {
	orders := os.Getenv(pollerEnv)
	if orders == "" {
		t.Skip("the bare poller runs as a helper process of TestBench")
	}
	f := strings.Split(orders, ",")
	points, _ := strconv.Atoi(f[2])
	secs, _ := strconv.ParseFloat(f[3], 64)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(f[0]).SetClientID("bench-poller").SetAutoReconnect(false))
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
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	var payload []byte
	for now := time.Now(); now.Before(deadline); now = <-tick.C {
		payload = now.UTC().AppendFormat(append(payload[:0], `{"ts":"`...), "2006-01-02T15:04:05.000Z")
		payload = append(payload, `","values":[`...)
		for at := 0; at < points; at += 125 {
			regs, err := dev.ReadHoldingRegisters(uint16(at), uint16(min(125, points-at)))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(regs); i += 2 {
				if at+i > 0 {
					payload = append(payload, ',')
				}
				payload = strconv.AppendUint(payload, uint64(regs[i])<<8|uint64(regs[i+1]), 10)
			}
		}
		payload = append(payload, "]}"...)
		if tok := c.Publish(prefix+"/"+adapter, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}
