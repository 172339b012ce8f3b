package main

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestDebianVersion(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"v1.2.0", "1.2.0"},
		{"1.2", "1.2"},
		{"v1.2.0-3-gabc1234", "1.2.0-3-gabc1234"},
		{"v1.2.0-3-gabc1234-dirty", "1.2.0-3-gabc1234-dirty"},
		{"8e3a860", "0~git8e3a860"},
		{"8e3a860-dirty", "0~git8e3a860-dirty"},
		{"dev", "0~gitdev"},
		{"v1.2.0+1", "1.2.0+1"},
		{"v1.2.0_x/y", "1.2.0+x+y"},
	} {
		if got := debianVersion(tt.in); got != tt.want {
			t.Errorf("debianVersion(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestDebianVersionOrder checks with dpkg that the versions sort as a
// release history does: untagged builds first, then each tag, the commits
// after it, and a rebuild with "+1" after what it rebuilds.
func TestDebianVersionOrder(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no dpkg")
		}
		t.Skip("no dpkg")
	}
	order := []string{"9fffff0", "v0.9.0", "v1.0.0", "v1.0.0-2-gabc", "v1.0.0-10-gdef", "v1.0.0-10-gdef+1", "v1.0.1"}
	for i := 1; i < len(order); i++ {
		a, b := debianVersion(order[i-1]), debianVersion(order[i])
		if err := exec.Command(dpkg, "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg does not order %q (%s) before %q (%s)", order[i-1], a, order[i], b)
		}
	}
}

func TestChangelogFormat(t *testing.T) {
	date := time.Date(2026, 11, 22, 1, 45, 0, 0, time.UTC)
	got := string(changelog("1.2.0-1", "v1.2.0", "abc1234", "A B <a@b.example>", date))
	want := "fieldgate (1.2.0-1) stable; urgency=medium\n\n" +
		"  * fieldgate v1.2.0, built from commit abc1234.\n\n" +
		" -- A B <a@b.example>  Sun, 22 Nov 2026 01:45:00 +0000\n"
	if got != want {
		t.Errorf("changelog:\n%s\nwant:\n%s", got, want)
	}
}

func TestLicensedModules(t *testing.T) {
	mods, err := licensedModules(copyright)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"github.com/eclipse/paho.mqtt.golang", "golang.org/x/sys", "std"} {
		if !mods[m] {
			t.Errorf("%s: no Files: %s/* paragraph", copyright, m)
		}
	}
	if !mods["*"] {
		t.Errorf("%s: no Files: * paragraph for fieldgate itself", copyright)
	}
}
