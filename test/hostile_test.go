package test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/test/peers"
)

// writablePoints are a setpoint register and a pump coil, both writable.
const writablePoints = `
  [[modbus.point]]
  name = "setpoint"
  table = "holding_register"
  address = 10
  type = "int16"
  scale = 0.1
  writable = true
  [[modbus.point]]
  name = "pump"
  table = "coil"
  address = 0
  writable = true
`

// TestCommandsFromAnOutageNeverReachTheDevice kills the gateway (its
// upstream keeps the default persistent session), publishes commands while
// it is away, and starts it again: nothing from the outage is written to
// the device, a retained one is refused with the reason, and a command sent
// after the return is written.
func TestCommandsFromAnOutageNeverReachTheDevice(t *testing.T) {
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	bank, dev := device(t)
	obs := peers.Observe(t, mq.URL(), prefix+"/+/+/set/result")
	cfg := writeConfig(t, strings.Replace(config(t.TempDir(), upstream("local", mq.URL()), dev.Addr, "200ms", writablePoints),
		"[gateway]\n", "[gateway]\ncommand_max_age = \"2s\"\n", 1))
	g := startGateway(t, cfg)
	g.waitLog("subscribed to commands")
	g.kill9()

	obs.Publish(t, prefix+"/plc/setpoint/set", 1, false, "22")
	obs.Publish(t, prefix+"/plc/pump/set", 1, false, `{"value":true,"id":"pump-off-line"}`)
	obs.Publish(t, prefix+"/plc/pump/set", 1, true, `{"value":true,"id":"retained"}`)
	t.Cleanup(func() { obs.Publish(t, prefix+"/plc/pump/set", 1, true, "") })

	g = startGateway(t, cfg)
	refused := obs.AwaitMessage(t, wait, prefix+"/plc/pump/set/result", func(p []byte) bool {
		return bytes.Contains(p, []byte(`"id":"retained"`))
	})
	if !bytes.Contains(refused.Payload, []byte(`"ok":false`)) || !bytes.Contains(refused.Payload, []byte("retained command refused")) {
		t.Errorf("retained command: result %s, want a refusal that says why", refused.Payload)
	}
	obs.Publish(t, prefix+"/plc/setpoint/set", 1, false, `{"value":23.5,"id":"after"}`)
	after := obs.AwaitMessage(t, wait, prefix+"/plc/setpoint/set/result", func(p []byte) bool {
		return bytes.Contains(p, []byte(`"id":"after"`))
	})
	if !bytes.Contains(after.Payload, []byte(`"ok":true`)) {
		t.Errorf("command after the return: %s", after.Payload)
	}
	if w := bank.Writes(); len(w) != 1 || w[0].Table != "holding_register" || w[0].Addr != 10 || bank.Coil(0) {
		t.Errorf("device writes %+v (pump %v), want only the setpoint written after the return", w, bank.Coil(0))
	}
	for _, m := range obs.All() {
		if bytes.Contains(m.Payload, []byte(`"ok":true`)) && !bytes.Contains(m.Payload, []byte(`"id":"after"`)) {
			t.Errorf("a command from the outage succeeded: %s", m)
		}
	}
	if code := g.stop(); code != 0 {
		t.Errorf("clean stop exited %d", code)
	}
}
