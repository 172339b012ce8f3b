package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/fieldgate/fieldgate/adapters/all"
	"github.com/fieldgate/fieldgate/adapters/gpio"
	"github.com/fieldgate/fieldgate/adapters/modbus"
	"github.com/fieldgate/fieldgate/adapters/serial"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/BurntSushi/toml"
)

// env is the environment the tests load configs with.
var env = config.TestEnv

// load parses src as the file "fieldgate.toml", with files (for
// password_file) read from dir.
func load(t *testing.T, dir, src string) (*config.Config, error) {
	t.Helper()
	return config.Parse("fieldgate.toml", []byte(src), env, func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, name))
	})
}

// errLines returns each problem of err as its printed line.
func errLines(t *testing.T, err error) []string {
	t.Helper()
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v (%T) is not config.Errors", err, err)
	}
	return strings.Split(es.Error(), "\n")
}

func TestLoadErrors(t *testing.T) {
	const gw = "[gateway]\nid = \"gw\"\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "spec example",
			src: gw + `
[[modbus]]
name = "boiler"
url = "tcp://192.168.1.10:502"
  [[modbus.point]]
  name = "supply"
  table = "holding_register"
  [[modbus.point]]
  name = "temp"
  table = "holding_register"
  address = 2
  type = "flaot32"
`,
			want: []string{`fieldgate.toml:14:3: modbus "boiler" point "temp": unknown type "flaot32"`},
		},
		{
			name: "syntax error",
			src:  "[gateway]\nid = \"gw\"\nlog_level = \"info\n",
			want: []string{`fieldgate.toml:3:18: strings cannot contain newlines`},
		},
		{
			name: "file ends inside an escape on its first line",
			src:  `id = "\`,
			want: []string{`fieldgate.toml:1:7: the file ends inside a string`},
		},
		{
			name: "file ends inside an escape",
			src:  "[gateway]\nid = \"gw\"\nlog_level = \"\\",
			want: []string{`fieldgate.toml:3:14: the file ends inside a string`},
		},
		{
			name: "duplicate key is a syntax error",
			src:  "[gateway]\nid = \"gw\"\nid = \"gw2\"\n",
			want: []string{`fieldgate.toml:3:1: Key 'gateway.id' has already been defined.`},
		},
		{
			name: "no gateway table",
			src:  "[buffer]\ndir = \"/tmp\"\n",
			want: []string{`fieldgate.toml: gateway: id is required`},
		},
		{
			name: "unknown keys at every level",
			src: "typo = 1\n" + gw + "log_levle = \"info\"\n" + `
[[upstream]]
name = "cloud"
url = "mqtt://localhost:1883"
  [upstream.tls]
  ca = "x"
[[gpio]]
name = "io"
chip = "gpiochip0"
point = [{ name = "door", line = 4, direction = "input", edj = "both" }]
`,
			want: []string{
				`fieldgate.toml:1:1: unknown key "typo"`,
				`fieldgate.toml:4:1: gateway: unknown key "log_levle"`,
				`fieldgate.toml:9:3: upstream "cloud": tls is set but the url scheme is not a TLS one (use mqtts://, ssl://, tls:// or wss://)`,
				`fieldgate.toml:10:3: upstream "cloud" tls: unknown key "ca"`,
				`fieldgate.toml:14:58: gpio "io" point "door": unknown key "edj"`,
			},
		},
		{
			name: "type mismatches",
			src: gw + `
[buffer]
max_size = true
fsync_interval = 1
[[upstream]]
name = "cloud"
url = "mqtt://localhost:1883"
qos = "1"
retain = "no"
password = 123456
urls = "mqtt://other:1883"
alpn = 3
tls = "yes"
`,
			want: []string{
				`fieldgate.toml:5:1: buffer: max_size: want a size: bytes or a string like "64MiB"`,
				`fieldgate.toml:6:1: buffer: fsync_interval: want a duration string like "1s", got integer 1`,
				`fieldgate.toml:10:1: upstream "cloud": qos: want an integer, got string "1"`,
				`fieldgate.toml:11:1: upstream "cloud": retain: want true or false, got string "no"`,
				`fieldgate.toml:12:1: upstream "cloud": password: want a string`,
				`fieldgate.toml:13:1: upstream "cloud": urls: want an array, got string "mqtt://other:1883"`,
				`fieldgate.toml:14:1: upstream "cloud": unknown key "alpn"`,
				`fieldgate.toml:15:1: upstream "cloud": tls: want a table, got string "yes"`,
			},
		},
		{
			name: "environment",
			src: gw + `
[[upstream]]
name = "cloud"
url = "mqtts://${BROKER}:8883"
username = "${EMPTY}"
password = "${NOPE}"
client_id = "${bad-name}"
topic_prefix = "a/${UNCLOSED"
`,
			want: []string{
				`fieldgate.toml:8:1: upstream "cloud": password: environment variable NOPE is not set`,
				`fieldgate.toml:9:1: upstream "cloud": client_id: bad environment variable name "bad-name"`,
				`fieldgate.toml:10:1: upstream "cloud": topic_prefix: unterminated ${ in "a/${UNCLOSED"`,
			},
		},
		{
			name: "secrets stay out of errors",
			src: gw + `
[[upstream]]
name = "a"
urls = ["mqtt://gw:hunter2@b", "http://gw:hunter2@c:1"]
password = "hunter2${OPEN"
[[upstream]]
name = "b"
password = "hunter2${bad-name}"
url = "mqtt://b:1883"
`,
			want: []string{
				`fieldgate.toml:6:9: upstream "a": url "mqtt://gw:xxxxx@b" has no port`,
				`fieldgate.toml:6:32: upstream "a": bad url "http://gw:xxxxx@c:1": want mqtt://, tcp://, mqtts://, ssl://, tls://, ws:// or wss:// and a host`,
				`fieldgate.toml:7:1: upstream "a": password: bad ${NAME} reference`,
				`fieldgate.toml:10:1: upstream "b": password: bad ${NAME} reference`,
			},
		},
		{
			name: "durations and sizes",
			src: `[gateway]
id = "gw"
command_max_age = "0s"
timer_slack = "1s"
[buffer]
max_size = "12XB"
fsync_interval = "-1s"
[[upstream]]
name = "cloud"
url = "mqtt://localhost:1883"
keepalive = "500ms"
reconnect_max = "ten seconds"
`,
			want: []string{
				`fieldgate.toml:3:1: gateway: command_max_age must be more than 0`,
				`fieldgate.toml:4:1: gateway: timer_slack must be at most 100ms`,
				`fieldgate.toml:6:1: buffer: max_size: bad size "12XB" (use bytes or a unit: "64MiB", "1GB", "512KiB")`,
				`fieldgate.toml:7:1: buffer: fsync_interval: negative duration "-1s"`,
				`fieldgate.toml:11:1: upstream "cloud": keepalive must be at least 1s`,
				`fieldgate.toml:12:1: upstream "cloud": reconnect_max: bad duration "ten seconds" (use e.g. "250ms", "1s", "5m")`,
			},
		},
		{
			name: "names: pattern, duplicates, reserved",
			src: `[gateway]
id = "pi gw"
[[upstream]]
name = "cloud"
url = "mqtt://a:1883"
[[upstream]]
name = "cloud"
url = "mqtt://b:1883"
[[modbus]]
name = "boiler"
url = "tcp://10.0.0.1:502"
point = [{ name = "t", table = "coil" }, { name = "t", table = "coil", address = 1 }, { name = "status", table = "coil", address = 2 }]
[[serial]]
name = "boiler"
port = "/dev/ttyS0"
point = [{ name = "w", pattern = "(.*)" }]
[[gpio]]
name = "status"
chip = "gpiochip0"
point = [{ name = "a.b", line = 1, direction = "input" }]
`,
			want: []string{
				`fieldgate.toml:2:1: gateway: bad id "pi gw": use only letters, digits, _ and -`,
				`fieldgate.toml:7:1: upstream "cloud": duplicate upstream name "cloud" (first used at line 4)`,
				`fieldgate.toml:12:44: modbus "boiler" point "t": duplicate point name "t" (first used at line 12)`,
				`fieldgate.toml:12:89: modbus "boiler" point "status": name "status" is reserved for status topics`,
				`fieldgate.toml:14:1: serial "boiler": duplicate adapter name "boiler" (first used at line 10)`,
				`fieldgate.toml:18:1: gpio "status": name "status" is reserved for status topics`,
				`fieldgate.toml:20:12: gpio "status" point "a.b": bad name "a.b": use only letters, digits, _ and -`,
			},
		},
		{
			name: "upstream urls and tls",
			src: gw + `
[[upstream]]
name = "a"
[[upstream]]
name = "b"
url = "mqtt://x:1883"
urls = ["mqtt://y:1883"]
[[upstream]]
name = "c"
urls = ["mqtts://x:8883", "tcp://y:1883", "http://z", "mqtt://nopport"]
[[upstream]]
name = "d"
url = "ssl://x:8883"
password = "p"
password_file = "pw"
qos = -1
format = "xml"
batch_max = 0
topic_prefix = "site/+/"
tls.cert_file = "c.pem"
`,
			want: []string{
				`fieldgate.toml:4:1: upstream "a": url or urls is required`,
				`fieldgate.toml:9:1: upstream "b": give url or urls, not both`,
				`fieldgate.toml:12:1: upstream "c": urls mix TLS and plain schemes`,
				`fieldgate.toml:12:43: upstream "c": bad url "http://z": want mqtt://, tcp://, mqtts://, ssl://, tls://, ws:// or wss:// and a host`,
				`fieldgate.toml:12:55: upstream "c": url "mqtt://nopport" has no port`,
				`fieldgate.toml:17:1: upstream "d": give password or password_file, not both`,
				`fieldgate.toml:18:1: upstream "d": qos -1 out of range 0..2`,
				`fieldgate.toml:19:1: upstream "d": unknown format "xml"`,
				`fieldgate.toml:20:1: upstream "d": batch_max 0 out of range 1..10000`,
				`fieldgate.toml:21:1: upstream "d": bad topic_prefix "site/+/": no wildcards (+ #) and no trailing /`,
				`fieldgate.toml:22:1: upstream "d" tls: cert_file needs key_file`,
			},
		},
		{
			name: "modbus device",
			src: gw + `
[[modbus]]
name = "a"
url = "rtu://dev/ttyUSB0"
point = [{ name = "p", table = "coil" }]
[[modbus]]
name = "b"
url = "rtu:///dev/ttyUSB0"
unit_id = 248
interval = "0s"
parity = "X"
data_bits = 9
stop_bits = 3
baud_rate = 0
max_gap = -1
point = [{ name = "p", table = "coil" }]
[[modbus]]
name = "c"
url = "rtu:///dev/ttyUSB0"
baud_rate = 19200
point = [{ name = "p", table = "coil" }]
[[modbus]]
name = "d"
url = "tcp://10.0.0.1:502"
unit_id = 256
[[modbus]]
name = "e"
`,
			want: []string{
				`fieldgate.toml:6:1: modbus "a": bad url "rtu://dev/ttyUSB0": want tcp://host:port, rtu:///dev/ttyUSB0 or rtu+tcp://host:port`,
				`fieldgate.toml:11:1: modbus "b": unit_id 248 out of range 1..247`,
				`fieldgate.toml:12:1: modbus "b": interval must be more than 0`,
				`fieldgate.toml:13:1: modbus "b": unknown parity "X"`,
				`fieldgate.toml:14:1: modbus "b": data_bits 9 out of range 5..8`,
				`fieldgate.toml:15:1: modbus "b": stop_bits 3 out of range 1..2`,
				`fieldgate.toml:16:1: modbus "b": baud_rate 0 out of range 1..12000000`,
				`fieldgate.toml:17:1: modbus "b": max_gap -1 out of range 0..65535`,
				`fieldgate.toml:21:1: modbus "c": line settings differ from modbus "b" on the same bus "/dev/ttyUSB0"`,
				`fieldgate.toml:24:1: modbus "d": no points`,
				`fieldgate.toml:27:1: modbus "d": unit_id 256 out of range 0..255`,
				`fieldgate.toml:28:1: modbus "e": no points`,
				`fieldgate.toml:28:1: modbus "e": url is required`,
			},
		},
		{
			name: "modbus points",
			src: gw + `
[[modbus]]
name = "m"
url = "rtu+tcp://10.0.0.1:4001"
  [[modbus.point]]
  name = "a"
  [[modbus.point]]
  name = "b"
  table = "discrete_input"
  type = "float32"
  writable = true
  [[modbus.point]]
  name = "c"
  table = "input_register"
  type = "uint16"
  bit = 3
  [[modbus.point]]
  name = "d"
  table = "holding_register"
  type = "bool"
  bit = 16
  [[modbus.point]]
  name = "e"
  table = "holding_register"
  type = "string"
  [[modbus.point]]
  name = "f"
  table = "holding_register"
  type = "float32"
  address = 65535
  length = 2
  byte_order = "XYZW"
  scale = 0
  deadband = -1
  [[modbus.point]]
  name = "g"
  table = "input_register"
  address = -1
  writable = true
`,
			want: []string{
				`fieldgate.toml:7:3: modbus "m" point "a": table is required`,
				`fieldgate.toml:12:3: modbus "m" point "b": type "float32" cannot be read from a discrete_input, only bool`,
				`fieldgate.toml:13:3: modbus "m" point "b": a discrete_input is read-only: only coils and holding registers are writable`,
				`fieldgate.toml:18:3: modbus "m" point "c": bit needs a register table and type bool`,
				`fieldgate.toml:23:3: modbus "m" point "d": bit 16 out of range 0..15`,
				`fieldgate.toml:24:3: modbus "m" point "e": type string needs length 1..123 (registers), not 0`,
				`fieldgate.toml:32:3: modbus "m" point "f": address 65535 with 2 registers does not fit 0..65535`,
				`fieldgate.toml:33:3: modbus "m" point "f": length is for type string only`,
				`fieldgate.toml:34:3: modbus "m" point "f": unknown byte_order "XYZW"`,
				`fieldgate.toml:35:3: modbus "m" point "f": scale must not be 0`,
				`fieldgate.toml:36:3: modbus "m" point "f": deadband must not be negative`,
				`fieldgate.toml:40:3: modbus "m" point "g": address -1 with 1 registers does not fit 0..65535`,
				`fieldgate.toml:41:3: modbus "m" point "g": a input_register is read-only: only coils and holding registers are writable`,
			},
		},
		{
			name: "serial",
			src: gw + `
[[modbus]]
name = "m"
url = "rtu:///dev/ttyS0"
point = [{ name = "p", table = "coil" }]
[[serial]]
name = "s"
port = "/dev/ttyS0"
mode = "query"
timeout = "0s"
  [[serial.point]]
  name = "a"
  [[serial.point]]
  name = "b"
  pattern = "[0-9"
  type = "float32"
  [[serial.point]]
  name = "c"
  pattern = "W:.*"
[[serial]]
name = "t"
mode = "poll"
point = [{ name = "x", pattern = "(x)" }]
`,
			want: []string{
				`fieldgate.toml:8:1: serial "s": request is required`,
				`fieldgate.toml:8:1: serial "s": query mode needs an interval`,
				`fieldgate.toml:10:1: serial "s": port "/dev/ttyS0" is already used by modbus "m"`,
				`fieldgate.toml:12:1: serial "s": timeout must be more than 0`,
				`fieldgate.toml:13:3: serial "s" point "a": pattern is required`,
				`fieldgate.toml:17:3: serial "s" point "b": bad pattern: error parsing regexp: missing closing ]: ` + "`[0-9`",
				`fieldgate.toml:18:3: serial "s" point "b": unknown type "float32"`,
				`fieldgate.toml:21:3: serial "s" point "c": pattern "W:.*" has no (group) to take the value from`,
				`fieldgate.toml:22:1: serial "t": port is required`,
				`fieldgate.toml:24:1: serial "t": unknown mode "poll"`,
			},
		},
		{
			name: "gpio",
			src: gw + `
[[gpio]]
name = "a"
chip = "gpiochip0"
  [[gpio.point]]
  name = "in"
  line = 17
  direction = "input"
  edge = "up"
  bias = "pull_sideways"
  [[gpio.point]]
  name = "out"
  line = -2
  direction = "output"
  edge = "both"
  [[gpio.point]]
  name = "x"
  line = 5
[[gpio]]
name = "b"
chip = "gpiochip0"
point = [{ name = "again", line = 17, direction = "input" }]
[[gpio]]
name = "c"
[[gpio]]
name = "d"
chip = "gpiochip1"
point = [{ name = "n", line = 1, direction = "output", counter = true },
  { name = "f", line = 2, direction = "input", counter = true, edge = "falling" },
  { name = "z", line = 3, direction = "input", counter = true, edge = "none" },
  { name = "b", line = 4, direction = "input", counter = true, edge = "both" }]
`,
			want: []string{
				`fieldgate.toml:11:3: gpio "a" point "in": unknown edge "up"`,
				`fieldgate.toml:12:3: gpio "a" point "in": unknown bias "pull_sideways"`,
				`fieldgate.toml:15:3: gpio "a" point "out": line -2 out of range 0..65535`,
				`fieldgate.toml:17:3: gpio "a" point "out": edge is for inputs only`,
				`fieldgate.toml:18:3: gpio "a" point "x": direction is required`,
				`fieldgate.toml:24:28: gpio "b" point "again": line 17 of gpiochip0 is already used by gpio "a" point "in"`,
				`fieldgate.toml:25:1: gpio "c": no points`,
				`fieldgate.toml:25:1: gpio "c": chip is required`,
				`fieldgate.toml:30:56: gpio "d" point "n": counter is for inputs only`,
				`fieldgate.toml:31:64: gpio "d" point "f": a counter counts rising edges: edge must be rising or both, not "falling"`,
				`fieldgate.toml:32:64: gpio "d" point "z": a counter counts rising edges: edge must be rising or both, not "none"`,
			},
		},
		{
			name: "sparkplug",
			src: gw + `
[[upstream]]
name = "a"
url = "mqtt://x:1883"
format = "sparkplug"
[[upstream]]
name = "b"
url = "mqtt://x:1883"
sparkplug = { group_id = "g" }
[[upstream]]
name = "c"
url = "mqtt://x:1883"
format = "sparkplug"
retain = true
homeassistant = true
  [upstream.sparkplug]
  edge_node_id = "n/1"
  primary_host_id = "h#"
[[upstream]]
name = "d"
url = "mqtt://x:1883"
format = "sparkplug"
sparkplug = { group_id = "plant+1" }
`,
			want: []string{
				`fieldgate.toml:7:1: upstream "a": format "sparkplug" needs an [upstream.sparkplug] table with group_id`,
				`fieldgate.toml:11:1: upstream "b": a sparkplug table needs format = "sparkplug"`,
				`fieldgate.toml:16:1: upstream "c": retain must be false with format "sparkplug": Sparkplug messages are never retained`,
				`fieldgate.toml:17:1: upstream "c": homeassistant does not go with format "sparkplug", which has no topic per point`,
				`fieldgate.toml:18:3: upstream "c" sparkplug: group_id is required`,
				`fieldgate.toml:19:3: upstream "c" sparkplug: bad edge_node_id "n/1": must be UTF-8 without + / #`,
				`fieldgate.toml:20:3: upstream "c" sparkplug: bad primary_host_id "h#": must be UTF-8 without + / #`,
				`fieldgate.toml:25:15: upstream "d" sparkplug: bad group_id "plant+1": must be UTF-8 without + / #`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, t.TempDir(), tt.src)
			if err == nil {
				t.Fatal("loaded without error")
			}
			got := errLines(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := load(t, t.TempDir(), `
[gateway]
id = "gw"
[[upstream]]
name = "cloud"
url = "mqtts://broker:8883"
[[upstream]]
name = "local"
urls = ["tcp://127.0.0.1:1883"]
qos = 0
commands = false
topic_prefix = "plant/gw"
[[modbus]]
name = "m"
url = "tcp://10.0.0.1:502"
max_gap = 0
point = [{ name = "c", table = "coil" }, { name = "r", table = "input_register", address = 7 }]
[[serial]]
name = "s"
port = "/dev/ttyS1"
point = [{ name = "v", pattern = "(.*)" }]
[[gpio]]
name = "g"
chip = "gpiochip0"
point = [{ name = "i", line = 1, direction = "input" }, { name = "o", line = 2, direction = "output" },
  { name = "n", line = 3, direction = "input", counter = true }]
`)
	if err != nil {
		t.Fatal(err)
	}
	one, zero, yes, no := 1, 0, true, false
	scale := 1.0
	line := config.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 1}
	want := &config.Config{
		Gateway: config.Gateway{ID: "gw", TopicPrefix: "fieldgate/gw", LogLevel: "info", CommandMaxAge: config.Duration(30 * time.Second)},
		Buffer:  config.Buffer{Dir: "/var/lib/fieldgate", MaxSize: 256 << 20, Fsync: "interval", FsyncInterval: config.Duration(time.Second)},
		Upstream: []config.Upstream{{
			Name: "cloud", URL: "mqtts://broker:8883", URLs: []string{"mqtts://broker:8883"}, ClientID: "gw-cloud",
			QoS: &one, Keepalive: config.Duration(30 * time.Second), ReconnectMax: config.Duration(10 * time.Second), Commands: &yes,
			TopicPrefix: "fieldgate/gw", Format: "json", BatchMax: 100, TLS: &config.TLS{},
		}, {
			Name: "local", URLs: []string{"tcp://127.0.0.1:1883"}, ClientID: "gw-local",
			QoS: &zero, Keepalive: config.Duration(30 * time.Second), ReconnectMax: config.Duration(10 * time.Second), Commands: &no,
			TopicPrefix: "plant/gw", Format: "json", BatchMax: 100,
		}},
		Adapters: []config.Adapter{{
			Kind: "modbus", Name: "m", Config: &modbus.Config{
				Name: "m", URL: "tcp://10.0.0.1:502", UnitID: 1, Interval: config.Duration(time.Second), Timeout: config.Duration(time.Second),
				Line: line, MaxGap: 0,
				Points: []modbus.PointConfig{
					{Name: "c", Table: modbus.Coil, Type: "bool", ByteOrder: "ABCD", Scale: &scale, MinWriteInterval: config.Duration(time.Second)},
					{Name: "r", Table: modbus.InputRegister, Address: 7, Type: "uint16", ByteOrder: "ABCD", Scale: &scale},
				},
			},
		}, {
			Kind: "serial", Name: "s", Config: &serial.Config{
				Name: "s", Port: "/dev/ttyS1", Line: line, Mode: "line", Delimiter: "\n", Timeout: config.Duration(time.Second),
				Points: []serial.PointConfig{{Name: "v", Pattern: "(.*)", Type: "float64"}},
			},
		}, {
			Kind: "gpio", Name: "g", Config: &gpio.Config{
				Name: "g", Chip: "gpiochip0",
				Points: []gpio.PointConfig{
					{Name: "i", Line: 1, Direction: "input", Edge: "both", Bias: "as_is"},
					{Name: "o", Line: 2, Direction: "output", Edge: "none", Bias: "as_is", MinWriteInterval: config.Duration(time.Second)},
					{Name: "n", Line: 3, Direction: "input", Edge: "rising", Bias: "as_is", Counter: true},
				},
			},
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("loaded\n%#v\nwant\n%#v", c, want)
	}
}

// TestExample loads examples/full.toml and checks that it uses every key
// the config types know, so the example documents the whole file format.
func TestExample(t *testing.T) {
	const path = "../examples/full.toml"
	t.Setenv("CLOUD_PASSWORD", "hunter2")
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(c.Upstream[0].Password); got != "hunter2" {
		t.Errorf("password %q, want it from $CLOUD_PASSWORD", got)
	}

	var raw map[string]any
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := toml.Decode(string(data), &raw); err != nil {
		t.Fatal(err)
	}
	used := map[reflect.Type]map[string]bool{}
	collectKeys(reflect.TypeFor[config.Config](), raw, used)
	for _, a := range c.Adapters { // the adapter kinds' tables, which the Config type does not hold
		collectKeys(reflect.TypeOf(a.Config), raw[a.Kind], used)
	}
	for typ, keys := range used {
		for k := range config.FieldIndex(typ) {
			if !keys[k] {
				t.Errorf("%s: key %q is not in %s", typ.Name(), k, path)
			}
		}
	}
	if len(used) != 12 {
		t.Errorf("example has %d kinds of table, want all 12", len(used))
	}
}

// collectKeys records, for each struct type, the keys data gives it.
func collectKeys(typ reflect.Type, data any, used map[reflect.Type]map[string]bool) {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct {
		return
	}
	tables, _ := config.AsSlice(data)
	if m, ok := data.(map[string]any); ok {
		tables = []any{m}
	}
	for _, tbl := range tables {
		m, _ := tbl.(map[string]any)
		for k, v := range m {
			if used[typ] == nil {
				used[typ] = map[string]bool{}
			}
			used[typ][k] = true
			if idx, ok := config.FieldIndex(typ)[k]; ok {
				collectKeys(typ.FieldByIndex(idx).Type, v, used)
			}
		}
	}
}

func TestAdaptersAndPoints(t *testing.T) {
	t.Setenv("CLOUD_PASSWORD", "hunter2")
	c, err := config.Load("../examples/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, a := range c.Adapters {
		kinds = append(kinds, a.Kind+" "+a.Name)
		switch cfg := a.Config.(type) {
		case *modbus.Config:
			if cfg.Name != a.Name {
				t.Errorf("%s: config of %q", a.Name, cfg.Name)
			}
		case *serial.Config, *gpio.Config:
		default:
			t.Errorf("%s: config is %T", a.Name, cfg)
		}
	}
	if want := []string{"modbus boiler", "modbus meter", "serial scale", "gpio io"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("adapters %v, want %v", kinds, want)
	}

	pt := func(adapter, name, typ, unit string, writable bool, scale float64) reading.Point {
		return reading.Point{Adapter: adapter, Name: name, Type: typ, Unit: unit, Writable: writable, Scale: scale}
	}
	want := []reading.Point{
		pt("boiler", "supply_temp", "float32", "degC", false, 0.1),
		pt("boiler", "setpoint", "int16", "degC", true, 0.1),
		pt("boiler", "burner_on", "bool", "", false, 1),
		pt("boiler", "model", "string", "", false, 1),
		pt("boiler", "pump", "bool", "", true, 1),
		pt("meter", "energy", "uint32", "kWh", false, 1),
		pt("scale", "weight", "float64", "kg", true, 1),
		pt("io", "door", "bool", "", false, 1),
		pt("io", "water", "uint64", "L", false, 1),
		pt("io", "relay", "bool", "", true, 1),
	}
	if got := c.Points(); !reflect.DeepEqual(got, want) {
		t.Errorf("points\n%v\nwant\n%v", got, want)
	}
}

func TestSummary(t *testing.T) {
	t.Setenv("CLOUD_PASSWORD", "hunter2")
	c, err := config.Load("../examples/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	c.Upstream[1].URLs[0] = "tcp://gw:hunter2@10.0.0.2:1883"
	want := `gateway pi-gw-01: topic prefix fieldgate/pi-gw-01, log level info
buffer /var/lib/fieldgate: max 256MiB, fsync interval every 1s
4 adapters, 10 points:
  modbus boiler: tcp://192.168.1.10:502 unit 1, 5 points every 1s
  modbus meter: rtu:///dev/ttyUSB0 unit 7, 1 point every 1s
  serial scale: /dev/ttyUSB1 9600 baud, query mode, 1 point
  gpio io: gpiochip0, 3 points
3 upstreams:
  cloud: mqtts://broker.example.com:8883, qos 1, json, tls with client certificate
  site: tcp://gw:xxxxx@10.0.0.2:1883 tcp://10.0.0.3:1883, qos 2, batch
  scada: mqtt://ignition.local:1883, qos 0, sparkplug group plant-1 edge node pi-gw-01 primary host scada-host
`
	if got := c.Summary(); got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Setenv("CLOUD_PASSWORD", "hunter2")
	c, err := config.Load("../examples/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstream[0]
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		slog.New(h).Info("x", "password", u.Password, "upstream", u, "config", c)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		fmt.Sprint(u.Password), fmt.Sprintf("%s %q %x %#v", u.Password, u.Password, u.Password, u.Password),
		fmt.Sprintf("%v %+v %#v", u, u, u), fmt.Sprintf("%+v", c), c.Summary(), logs.String(), string(j),
	} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "68756e74657232") {
			t.Errorf("password printed: %s", s)
		}
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cloud.pw"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const src = "[gateway]\nid = \"gw\"\n[[upstream]]\nname = \"cloud\"\nurl = \"mqtt://b:1883\"\npassword_file = %q\n"
	c, err := load(t, dir, fmt.Sprintf(src, "cloud.pw"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream[0].Password != "s3cret" {
		t.Errorf("password %q, want the file's first line", c.Upstream[0].Password)
	}

	_, err = load(t, dir, fmt.Sprintf(src, "missing.pw"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing password_file: %v, want fs.ErrNotExist", err)
	}
	if got := errLines(t, err); len(got) != 1 || !strings.HasPrefix(got[0], `fieldgate.toml:6:1: upstream "cloud": password_file: open `) {
		t.Errorf("missing password_file: %q", got)
	}
}

// TestLoad covers what Load adds to parse: reading the file, naming it as
// given, the real environment and password_file next to the config.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.toml")
	src := "[gateway]\nid = \"${GW_ID}\"\n[[upstream]]\nname = \"cloud\"\nurl = \"mqtt://b:1883\"\npassword_file = \"pw\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GW_ID", "gw-7")
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.ID != "gw-7" || c.Upstream[0].Password != "from-file" || c.Upstream[0].ClientID != "gw-7-cloud" {
		t.Errorf("loaded id %q password %q client id %q", c.Gateway.ID, string(c.Upstream[0].Password), c.Upstream[0].ClientID)
	}

	if err := os.WriteFile(filepath.Join(dir, "pw"), make([]byte, config.MaxSecretFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(path)
	if got := errLines(t, err); len(got) != 1 || !strings.HasPrefix(got[0], path+":6:1: ") {
		t.Errorf("oversized password_file: %q", got)
	}

	_, err = config.Load(filepath.Join(dir, "nope.toml"))
	var es config.Errors
	if !errors.Is(err, fs.ErrNotExist) || errors.As(err, &es) {
		t.Errorf("missing file: %v, want a plain fs.ErrNotExist", err)
	}
}

// TestSparkplugUpstream: the edge node id defaults to the gateway's and
// the session is clean whatever clean_session says (SPEC §5).
func TestSparkplugUpstream(t *testing.T) {
	c, err := load(t, t.TempDir(), `
[gateway]
id = "gw"
[[upstream]]
name = "scada"
url = "mqtt://x:1883"
format = "sparkplug"
clean_session = false
sparkplug = { group_id = "plant 1" }
`)
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstream[0]
	if want := (config.Sparkplug{GroupID: "plant 1", EdgeNodeID: "gw"}); *u.Sparkplug != want || !u.CleanSession {
		t.Errorf("sparkplug %+v clean_session %v; want %+v and a clean session", *u.Sparkplug, u.CleanSession, want)
	}
}

func TestExplicitValuesKept(t *testing.T) {
	c, err := load(t, t.TempDir(), `
[gateway]
id = "gw"
log_level = "DEBUG"
[buffer]
max_size = 1048576
fsync = "always"
[[modbus]]
name = "m"
url = "tcp://127.0.0.1:502"
unit_id = 0
parity = "e"
point = [{ name = "s", table = "holding_register", type = "string", length = 4, byte_order = "badc", scale = -2.5 }]
`)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Adapters[0].Config.(*modbus.Config)
	p := m.Points[0]
	if c.Gateway.LogLevel != "debug" || c.Buffer.MaxSize != 1<<20 || c.Buffer.Fsync != "always" ||
		m.UnitID != 0 || m.Parity != "E" || p.ByteOrder != "BADC" || *p.Scale != -2.5 || p.Registers() != 4 {
		t.Errorf("explicit values not kept: %+v %+v %+v", c.Gateway, c.Buffer, m)
	}
}

// TestExpandValuesOnly shows ${NAME} is expanded inside string values after
// parsing: a value with quotes and newlines stays one value, keys and
// comments are left alone and later lines keep their numbers.
func TestExpandValuesOnly(t *testing.T) {
	src := `# ${NOPE} in a comment
[gateway]
id = "gw"
[[upstream]]
name = "cloud"
url = "mqtt://${BROKER}:1883"
password = "${TRICKY}"
username = '''
${EMPTY}
'''
qos = 3
`
	_, err := load(t, t.TempDir(), src)
	if got := errLines(t, err); len(got) != 1 || got[0] != `fieldgate.toml:11:1: upstream "cloud": qos 3 out of range 0..2` {
		t.Errorf("errors %q", got)
	}
	c, err := load(t, t.TempDir(), strings.Replace(src, "qos = 3", "qos = 2", 1))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstream[0]
	if want, _ := env("TRICKY"); string(u.Password) != want || u.Username != "\n" || u.URLs[0] != "mqtt://broker.example.com:1883" {
		t.Errorf("password %q username %q urls %q", string(u.Password), u.Username, u.URLs)
	}
}

// TestTimerSlack: gateway.timer_slack when set; else 1 % of the shortest
// poll interval of any adapter or point, at most 1 ms, and the kernel's
// default (0) where 1 % is under its 50 µs.
func TestTimerSlack(t *testing.T) {
	for _, c := range []struct {
		shortest, want time.Duration
	}{
		{0, time.Millisecond}, // nothing polls
		{time.Second, time.Millisecond},
		{100 * time.Millisecond, time.Millisecond},
		{20 * time.Millisecond, 200 * time.Microsecond},
		{5 * time.Millisecond, 50 * time.Microsecond},
		{4 * time.Millisecond, 0},
		{time.Millisecond, 0},
	} {
		if got := config.AutoTimerSlack(c.shortest); got != c.want {
			t.Errorf("AutoTimerSlack(%v) = %v, want %v", c.shortest, got, c.want)
		}
	}

	const adapters = `
[[upstream]]
name = "local"
url = "tcp://127.0.0.1:1883"
[[modbus]]
name = "plc"
url = "tcp://127.0.0.1:502"
interval = "1s"
  [[modbus.point]]
  name = "slow"
  table = "holding_register"
  address = 0
  [[modbus.point]]
  name = "fast"
  table = "holding_register"
  address = 1
  interval = "20ms"
[[serial]]
name = "scale"
port = "/dev/ttyUSB1"
mode = "query"
request = "W\r\n"
interval = "50ms"
  [[serial.point]]
  name = "weight"
  pattern = "([0-9.]+)"
[[gpio]]
name = "io"
chip = "gpiochip0"
  [[gpio.point]]
  name = "door"
  line = 4
  direction = "input"
  interval = "30ms"
`
	for _, c := range []struct {
		name, gateway string
		want          time.Duration
	}{
		{"the fastest point among every adapter's", "", 200 * time.Microsecond},
		{"set", `timer_slack = "3ms"`, 3 * time.Millisecond},
		{"set to the kernel's", `timer_slack = "0"`, 0},
	} {
		cfg, err := load(t, t.TempDir(), "[gateway]\nid = \"gw\"\n"+c.gateway+"\n"+adapters)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := cfg.TimerSlack(); got != c.want {
			t.Errorf("%s: TimerSlack() = %v, want %v", c.name, got, c.want)
		}
	}
}
