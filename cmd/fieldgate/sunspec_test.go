package main

import (
	"slices"
	"time"

	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/buffer"

	"github.com/fieldgate/fieldgate/test/modbussim"
	"github.com/fieldgate/fieldgate/test/peers"
)

// TestSunSpecThroughTheGateway: the points a Modbus adapter discovers on a
// SunSpec device reach Home Assistant discovery, with device classes, and
// their readings carry their units; a command to a writable one is
// written to the device, scaled by its scale factor.
func TestSunSpecThroughTheGateway(t *testing.T) {
	broker := peers.StartMochi(t)
	dev, bank := startDevice(t)
	d := modbussim.NewSunSpec(40000, map[string]any{
		"inverter_three_phase_W_SF": []uint16{0},
		"inverter_three_phase_W":    []uint16{1500},
		"storage_basic_WChaMax_SF":  []uint16{1},
	})
	for _, id := range []int{1, 103, 124} {
		if err := d.Model(id, nil); err != nil {
			t.Fatal(err)
		}
	}
	d.End()
	d.Serve(bank)
	path := writeConfig(t, fmt.Sprintf(`
[[upstream]]
name = "cloud"
url = %q
homeassistant = true
[[modbus]]
name = "inv"
url = "tcp://%s"
interval = "100ms"
sunspec = true
`, broker.URL(), dev.Addr))
	openGateway(t, path, fast)

	for topic, want := range map[string][2]string{
		"homeassistant/sensor/gw/inv_inverter_three_phase_W/config":  {"power", "measurement"},
		"homeassistant/sensor/gw/inv_inverter_three_phase_WH/config": {"energy", "total_increasing"},
	} {
		m := broker.Received.AwaitMessage(t, wait, topic, func(p []byte) bool { return len(p) > 0 })
		var c map[string]any
		if err := json.Unmarshal(m.Payload, &c); err != nil {
			t.Fatal(err)
		}
		if c["device_class"] != want[0] || c["state_class"] != want[1] {
			t.Errorf("%s: %s; want device_class %s, state_class %s", topic, m.Payload, want[0], want[1])
		}
	}
	broker.Received.AwaitMessage(t, wait, "fieldgate/gw/inv/inverter_three_phase_W", func(p []byte) bool {
		return strings.Contains(string(p), `"value":1500`) && strings.Contains(string(p), `"unit":"W"`)
	})

	obs := peers.Observe(t, broker.URL(), "fieldgate/gw/inv/storage_basic_WChaMax/set/result")
	obs.Publish(t, "fieldgate/gw/inv/storage_basic_WChaMax/set", 1, false, `{"value":4200,"id":"w"}`)
	obs.AwaitMessage(t, wait, "fieldgate/gw/inv/storage_basic_WChaMax/set/result", func(p []byte) bool {
		return strings.Contains(string(p), `"ok":true`)
	})
	if got := bank.Holding(uint16(d.Points()["storage_basic_WChaMax"].Addr), 1); got[0] != 420 {
		t.Errorf("register %d, want 420: 4200 W at scale factor 1", got[0])
	}
}

// TestScanReportsSunSpec: scan names the SunSpec models of a unit that has
// them, and says so of one that has none.
func TestScanReportsSunSpec(t *testing.T) {
	sunspec, bank := startDevice(t)
	d := modbussim.NewSunSpec(40000, nil)
	for _, id := range []int{1, 103} {
		if err := d.Model(id, nil); err != nil {
			t.Fatal(err)
		}
	}
	d.Vendor(64999, 4)
	d.End()
	d.Serve(bank)
	plain, _ := startDevice(t)
	for url, want := range map[string]string{
		sunspec.Addr: "sunspec: 1 common, 103 inverter_three_phase, 64999 (not in the definitions) (from holding register 40000)",
		plain.Addr:   "sunspec: none (no SunS marker at holding register 40000, 50000 or 0)",
	} {
		code, out, errOut := runCmd("scan", "tcp://"+url, "--units", "1", "--timeout", "2s")
		if code != exitOK || !strings.Contains(out, "\n      "+want+"\n") {
			t.Errorf("scan %s: exit %d, output\n%s%s\nwant the line %q", url, code, out, errOut, want)
		}
	}
}

// TestReadSunSpecPoints: `fieldgate read` waits for the points a SunSpec
// device turns out to have, and reads one of them, or all, with units.
func TestReadSunSpecPoints(t *testing.T) {
	dev := inverter(t)
	path := writeConfig(t, fmt.Sprintf("[[modbus]]\nname = \"inv\"\nurl = \"tcp://%s\"\nsunspec = true\n", dev.Addr))
	for _, target := range []string{"inv/inverter_three_phase_W", "inv"} {
		code, out, errOut := runCmd("read", "-c", path, target)
		if code != exitOK || !regexp.MustCompile(`(?m)^inv/inverter_three_phase_W +1500 +W `).MatchString(out) {
			t.Errorf("read %s: exit %d, output\n%s%s\nwant inverter_three_phase_W at 1500 W", target, code, out, errOut)
		}
	}
	if code, _, errOut := runCmd("read", "-c", path, "inv/no_such_point"); code == exitOK || !strings.Contains(errOut, `no point "no_such_point"`) {
		t.Errorf("read of a point the device lacks: exit %d, %s", code, errOut)
	}
}

// TestSunSpecPointsSurviveARestart: readings of discovered points that
// wait in the buffer across a restart reach a Sparkplug host even though
// the device, down by then, cannot be discovered again: the points
// announced before the stop are kept, so the births declare them.
func TestSunSpecPointsSurviveARestart(t *testing.T) {
	broker := peers.StartMochi(t)
	broker.Stop() // the uplink is down while the readings are taken
	dev := inverter(t)
	path := writeConfig(t, fmt.Sprintf(`
[[upstream]]
name = "cloud"
url = %q
format = "sparkplug"
reconnect_max = "1s"
  [upstream.sparkplug]
  group_id = "plant"
[[modbus]]
name = "inv"
url = "tcp://%s"
interval = "100ms"
sunspec = true
`, broker.URL(), dev.Addr))

	g, _, stop := openGateway(t, path, fast)
	const point = "inverter_three_phase_W"
	deadline := time.After(wait)
	for buffered := false; !buffered; {
		changed := g.buf.Changed()
		es, err := g.buf.Read("cloud", 0, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		buffered = slices.ContainsFunc(es, func(e buffer.Entry) bool { return e.Point == point })
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no reading of %s buffered within %v", point, wait)
		}
	}
	if status := stop(); status != 0 {
		t.Fatalf("stopped with status %d", status)
	}
	if err := dev.Stop(); err != nil {
		t.Fatal(err)
	}

	broker.Start()
	host := peers.StartSparkplugHost(t, peers.SparkplugHostOptions{BrokerURL: broker.URL(), Group: "plant", EdgeNode: "gw"})
	openGateway(t, path, fast)
	host.Await(t, wait, "a historical DDATA of "+point, func(e peers.SparkplugEvent) bool {
		m, ok := e.Metric(point)
		return e.Event == "message" && e.Type == "DDATA" && e.Device == "inv" && ok && m.IsHistorical && m.Text() == "1500"
	})
	if ps := host.Problems(); len(ps) > 0 {
		t.Errorf("the host found problems: %v", ps)
	}
}

// inverter serves a SunSpec three-phase inverter (models 1 and 103) at
// holding register 40000, putting out 1500 W.
func inverter(t *testing.T) *modbussim.Server {
	t.Helper()
	dev, bank := startDevice(t)
	d := modbussim.NewSunSpec(40000, map[string]any{
		"inverter_three_phase_W_SF": []uint16{0},
		"inverter_three_phase_W":    []uint16{1500},
	})
	for _, id := range []int{1, 103} {
		if err := d.Model(id, nil); err != nil {
			t.Fatal(err)
		}
	}
	d.End()
	d.Serve(bank)
	return dev
}
