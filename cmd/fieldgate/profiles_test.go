package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/adapters/modbus/profiles"
	"github.com/fieldgate/fieldgate/config"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestProfilesLists: one line per profile, with its maker, kind and number
// of points.
func TestProfilesLists(t *testing.T) {
	code, out, errOut := runCmd("profiles")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "NAME") {
		t.Errorf("no header: %q", lines[0])
	}
	for i, p := range profiles.All() {
		f := strings.Fields(lines[i+1])
		if f[0] != p.Name || !strings.Contains(lines[i+1], p.Maker) || f[len(f)-2] != p.Kind || f[len(f)-1] != fmt.Sprint(p.Points) {
			t.Errorf("line %q for %s (%s, %s, %d points)", lines[i+1], p.Name, p.Maker, p.Kind, p.Points)
		}
	}
}

// TestProfilePrintsPastableTOML: each profile's printout, pasted under a
// [[modbus]] block, loads into the same points as the profile itself.
func TestProfilePrintsPastableTOML(t *testing.T) {
	for _, p := range profiles.All() {
		t.Run(p.Name, func(t *testing.T) {
			code, out, errOut := runCmd("profiles", p.Name)
			if code != exitOK || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			const block = "[gateway]\nid = \"gw\"\n[[modbus]]\nname = \"m\"\nurl = \"tcp://127.0.0.1:502\"\n"
			pasted := loadPoints(t, block+out)
			named := loadPoints(t, block+fmt.Sprintf("profile = %q\n", p.Name))
			if !reflect.DeepEqual(pasted, named) {
				t.Errorf("pasted points differ from the profile's:\n%v\n%v", pasted, named)
			}
			var comments []string
			for _, line := range strings.Split(out, "\n") {
				if text, ok := strings.CutPrefix(line, "# "); ok {
					comments = append(comments, text)
				}
			}
			if !strings.Contains(strings.Join(comments, " "), "Source: "+p.Source) {
				t.Errorf("the comments do not name the source %q:\n%s", p.Source, out)
			}
		})
	}
}

func loadPoints(t *testing.T, text string) any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fieldgate.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return cfg.Points()
}

// TestProfileUnknown: exit 2, naming the closest profiles.
func TestProfileUnknown(t *testing.T) {
	code, out, errOut := runCmd("profiles", "eastron-sdm360")
	if code != exitBadConfig || out != "" || !strings.Contains(errOut, "did you mean eastron-sdm630") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, _ := runCmd("profiles", "a", "b"); code != exitBadConfig {
		t.Errorf("two names: exit %d", code)
	}
}
