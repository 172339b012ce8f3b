package peers

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartProcess runs sh scripts that get ready, exit first, or never get
// ready; one not ready in time must be stopped, and one started in its own
// group must take its children along when stopped.
func TestStartProcess(t *testing.T) {
	cases := []struct {
		name    string
		script  string
		group   bool
		wantErr string // "" when it gets ready
	}{
		{"ready", "echo starting; echo listening; exec sleep 60", false, ""},
		{"ready after a partial line", "printf 'listen'; sleep 0.1; echo ing; exec sleep 60", false, ""},
		{"ignores SIGTERM", "trap '' TERM; echo listening; while :; do sleep 0.1; done", false, ""},
		{"group", "sleep 60 & echo listening; wait", true, ""},
		{"exits first", "echo oops; exit 3", false, "sh exited before it was ready: exit status 3"},
		{"never ready", "exec sleep 60", false, "sh not ready within 300ms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out Lines
			cmd := exec.Command("sh", "-c", c.script)
			cmd.Stdout = &out
			if c.group {
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			}
			p, err := StartProcess(t, cmd, &out, "listening", 300*time.Millisecond)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				if cmd.ProcessState == nil {
					t.Error("the process still runs")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			p.Stop()
			took := time.Since(begin)
			t.Logf("stopped in %v", took.Round(time.Millisecond))
			if p.Err() == nil {
				t.Error("a stopped process exited 0")
			}
			// The background sleep holds the output pipe, which Stop waits
			// for: it returns at once only if SIGTERM reached the sleep too.
			if c.group && took >= stopGrace {
				t.Errorf("stopping the group took %v", took)
			}
			p.Stop() // a no-op now
		})
	}
}
