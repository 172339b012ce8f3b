package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fieldgate/fieldgate/test/peers"
)

// BenchmarkEndToEnd measures readings per second from a 200-point Modbus TCP
// device polled as fast as it answers, through the gateway (built without
// the race detector) into Mosquitto at QoS 1, as a subscriber receives them,
// and the gateway's resident memory. FIELDGATE_E2E_SECONDS sets how long it
// runs (default 5).
func BenchmarkEndToEnd(b *testing.B) {
	secs := 5
	if s, err := strconv.Atoi(os.Getenv("FIELDGATE_E2E_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	bin, err := plainBinary()
	if err != nil {
		b.Fatal(err)
	}
	mq := peers.StartMosquitto(b, peers.MosquittoOptions{})
	bank, dev := device(b)
	var points strings.Builder
	for i := range 200 {
		bank.SetHolding(uint16(i), uint16(i))
		fmt.Fprintf(&points, "  [[modbus.point]]\n  name = \"p%d\"\n  table = \"holding_register\"\n  address = %d\n", i, i)
	}

	var received atomic.Int64
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(mq.URL()).SetClientID("bench-sub").
		SetDefaultPublishHandler(func(paho.Client, paho.Message) { received.Add(1) }))
	if tok := sub.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		b.Fatalf("subscriber: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe(prefix+"/plc/+", 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		b.Fatalf("subscribe: %v", tok.Error())
	}

	cfg := filepath.Join(b.TempDir(), "fieldgate.toml")
	text := strings.Replace(config(b.TempDir(), upstream("local", mq.URL()), dev.Addr, "1ms", points.String()),
		`log_level = "debug"`, `log_level = "warn"`, 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	gw := exec.Command(bin, "run", "-c", cfg)
	gw.Stderr = os.Stderr
	if err := gw.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = gw.Process.Kill()
		_ = gw.Wait()
	}()

	b.ResetTimer()
	for range b.N {
		start, n0, reads0 := time.Now(), received.Load(), bank.Reads()
		time.Sleep(time.Duration(secs) * time.Second) // the measurement window, not synchronisation
		el := time.Since(start).Seconds()
		b.ReportMetric(float64(received.Load()-n0)/el, "delivered/s")
		b.ReportMetric(float64(bank.Reads()-reads0)*100/el, "polled/s") // 200 points in 2 requests a cycle
	}
	b.StopTimer()
	rss, hwm, err := peers.ProcMem(gw.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rss, "RSS-MiB")
	b.ReportMetric(hwm, "peakRSS-MiB")
	if fi, err := os.Stat(bin); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
	}
}
