package test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

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

// TestHugeCommandIsNotReadIntoMemory publishes a 100 MB command to the
// gateway (built without the race detector, as shipped) through Mosquitto:
// it is refused unread, the gateway's peak resident memory stays under
// 30 MiB, and readings keep flowing.
func TestHugeCommandIsNotReadIntoMemory(t *testing.T) {
	const size, maxPeak = 100 << 20, 30.0 // bytes, MiB
	bin, err := plainBinary()
	if err != nil {
		t.Fatal(err)
	}
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{})
	bank, dev := device(t)
	bank.SetHolding(10, 215)
	obs := peers.Observe(t, mq.URL(), prefix+"/#")
	metrics := peers.FreeAddr(t)
	cfg := strings.Replace(config(t.TempDir(), upstream("local", mq.URL()), dev.Addr, "100ms", writablePoints),
		"[gateway]\n", fmt.Sprintf("[gateway]\nmetrics_listen = %q\n", metrics), 1)
	g := startBinary(t, bin, writeConfig(t, cfg))
	g.waitLog("subscribed to commands")
	obs.AwaitMessage(t, wait, prefix+"/plc/setpoint", nil)

	// A client of its own, so that the observer's inbox does not get the
	// 100 MB back.
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(mq.URL()).SetClientID("huge-publisher"))
	if tok := pub.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	payload := bytes.Repeat([]byte("x"), size)
	if tok := pub.Publish(prefix+"/plc/setpoint/set", 1, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	payload = nil
	res := obs.AwaitMessage(t, wait, prefix+"/plc/setpoint/set/result", nil)
	if want := fmt.Sprintf(`"ok":false,"error":"command larger than 4 KiB (%d bytes)"`, size); !bytes.Contains(res.Payload, []byte(want)) {
		t.Errorf("result %s, want %s", res.Payload, want)
	}
	before := len(obs.Topic(prefix + "/plc/setpoint"))
	obs.Await(t, wait, "readings after the huge command", func([]peers.Message) bool {
		return len(obs.Topic(prefix+"/plc/setpoint")) >= before+5
	})
	rss, peak, err := peers.ProcMem(g.proc.Pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gateway RSS %.1f MiB, peak %.1f MiB after a %d MiB command", rss, peak, size>>20)
	if peak >= maxPeak {
		t.Errorf("peak RSS %.1f MiB, want under %.0f MiB", peak, maxPeak)
	}
	if w := bank.Writes(); len(w) != 0 {
		t.Errorf("device writes %+v, want none", w)
	}
	if _, m := get(t, "http://"+metrics+"/metrics"); !strings.Contains(m, `fieldgate_upstream_oversize_dropped_total{upstream="local"} 1`) {
		t.Errorf("metrics do not count the dropped message:\n%s", m)
	}
	g.waitLog("message too large to read; dropped unread", fmt.Sprintf("bytes=%d", size))
}

// TestHostileConfigAtReload hands the running gateway, at SIGHUP, files
// built to exhaust a loader (deep nesting, a long dotted key, 50 MB) and
// one with an unquoted password: each reload is refused quickly and the
// gateway keeps polling and publishing, and the password never shows.
func TestHostileConfigAtReload(t *testing.T) {
	const secret = "Zq9xW7vKp3"
	broker := peers.StartMochi(t)
	_, dev := device(t)
	dir := t.TempDir()
	good := config(dir, upstream("local", broker.URL()), dev.Addr, "100ms", onePoint)
	cfg := writeConfig(t, good)
	g := startGateway(t, cfg)
	broker.Received.AwaitMessage(t, wait, prefix+"/plc/v", nil)

	for _, bad := range []struct{ name, text, refusal string }{
		{"nested arrays", "x = " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n", "nested more than 8 deep"},
		{"nested tables", "x = " + strings.Repeat("{a=", 100000) + "1" + strings.Repeat("}", 100000) + "\n", "nested more than 8 deep"},
		{"dotted key", strings.Repeat("a.", 100000) + "b = 1\n", "more than 8 parts"},
		{"50 MB", "# " + strings.Repeat("x", 50<<20) + "\n", "larger than 1MiB"},
		{"unquoted password", strings.Replace(good, "qos = 1\n", "qos = 1\npassword = "+secret+"\n", 1), "expected value"},
	} {
		text := bad.text
		if !strings.Contains(text, "[gateway]") {
			text = good + text
		}
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		g.proc.Signal(syscall.SIGHUP)
		g.waitLog("reload refused", bad.refusal)
		took := time.Since(start)
		n := len(broker.Received.Topic(prefix + "/plc/v"))
		broker.Received.Await(t, wait, "readings after the "+bad.name+" reload", func([]peers.Message) bool {
			return len(broker.Received.Topic(prefix+"/plc/v")) > n+3
		})
		t.Logf("%s: refused in %v", bad.name, took.Round(time.Millisecond))
	}
	if strings.Contains(g.logs.String(), secret[:4]) {
		t.Errorf("the log shows the password:\n%s", g.logs)
	}
	if code := g.stop(); code != 0 {
		t.Errorf("clean stop exited %d", code)
	}
}

// TestCertificateRotationAtReload renews the gateway's client certificate
// and key in place, as certbot or a PKI agent does, and sends SIGHUP with
// the config file unchanged: the TLS upstream reconnects with the new
// certificate (Mosquitto, requiring client certificates, logs the CN it
// presents), the plain one keeps its connection. A renewal half done (a key
// that does not match) keeps the connection made with the old files.
func TestCertificateRotationAtReload(t *testing.T) {
	dir := t.TempDir()
	ca := peers.NewCA(t, dir, "ca")
	srvCert, srvKey := ca.Issue(t, dir, "broker", true)
	mq := peers.StartMosquitto(t, peers.MosquittoOptions{TLS: &peers.MosquittoTLS{
		CAFile: ca.CertFile, CertFile: srvCert, KeyFile: srvKey, RequireCertificate: true, IdentityAsUsername: true,
	}})
	// The gateway's files: a first certificate, then a renewed one, issued
	// elsewhere and copied over them.
	certFile, keyFile := ca.Issue(t, dir, "gateway-2026", false)
	renewedCert, renewedKey := ca.Issue(t, t.TempDir(), "gateway-2027", false)
	_, dev := device(t)
	ups := upstream("secure", mq.TLSURL()) + fmt.Sprintf("  [upstream.tls]\n  ca_file = %q\n  cert_file = %q\n  key_file = %q\n",
		ca.CertFile, certFile, keyFile) + upstream("plain", mq.URL())
	g := startGateway(t, writeConfig(t, config(t.TempDir(), ups, dev.Addr, "100ms", onePoint)))
	mq.Log().Await(t, wait, "as it-secure (", "u'gateway-2026'")
	mq.Log().Await(t, wait, "as it-plain (")

	copyFile := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Half done: the new certificate, the old key.
	copyFile(renewedCert, certFile)
	g.proc.Signal(syscall.SIGHUP)
	g.waitLog("upstream=secure", "the TLS files changed but do not load")
	g.waitLog("configuration reloaded")

	copyFile(renewedKey, keyFile)
	g.proc.Signal(syscall.SIGHUP)
	mq.Log().Await(t, wait, "as it-secure (", "u'gateway-2027'")
	g.waitLog("msg=connected", "backlog_from=", "upstream=secure") // the readings connection
	if n := strings.Count(mq.Log().String(), "as it-plain ("); n != 1 {
		t.Errorf("the plain upstream connected %d times, want 1 (kept across the reloads)", n)
	}
	if n := strings.Count(mq.Log().String(), "as it-secure (p2, c0, k30, u'gateway-2026')"); n != 1 {
		t.Errorf("the old certificate connected %d times, want 1 (kept across the half-done renewal)", n)
	}
	if code := g.stop(); code != 0 {
		t.Errorf("clean stop exited %d", code)
	}
}
