package test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the fieldgate binary, for at most wait, and returns its exit
// code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, fieldgateBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ctx.Err() == nil {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fieldgate %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

func TestCheckReportsEveryErrorWithItsLine(t *testing.T) {
	cfg := writeConfig(t, `[gateway]
id = "gw1"

[[upstream]]
name = "cloud"
url = "mqtt://127.0.0.1:1883"
qos = 3

[[modbus]]
name = "boiler"
url = "tcp://127.0.0.1:502"
  [[modbus.point]]
  name = "temp"
  table = "holding_register"
  address = 0
  type = "flaot32"
  [[modbus.point]]
  name = "flow"
  table = "input_register"
  adress = 4
`)
	code, _, stderr := runCLI(t, "check", "-c", cfg)
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		cfg + `:7:`,       // qos = 3
		cfg + `:16:`,      // type = "flaot32"
		`"flaot32"`,       // the bad value is named
		cfg + `:20:`,      // adress = 4
		`adress`,          // the unknown key is named
		`modbus "boiler"`, // the key path
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestCheckValidConfigPrintsSummary(t *testing.T) {
	code, stdout, stderr := runCLI(t, "check", "-c", filepath.Join("..", "examples", "demo.toml"))
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"demo", "plant", "local"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
}

func TestRunWithBadConfigExits2(t *testing.T) {
	cfg := writeConfig(t, "[gateway]\nid = \"bad id!\"\n")
	if code, _, stderr := runCLI(t, "run", "-c", cfg); code != 2 || !strings.Contains(stderr, cfg+":2:") {
		t.Fatalf("exit %d, want 2 with the line named; stderr:\n%s", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "fieldgate ") || !strings.Contains(stdout, "go1.") {
		t.Fatalf("version: exit %d, %q", code, stdout)
	}
}
