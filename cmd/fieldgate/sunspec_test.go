package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

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
