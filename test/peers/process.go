package peers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long Stop lets a process exit on SIGTERM before it kills
// it.
const stopGrace = 5 * time.Second

// Process is a subprocess a test runs as a peer (a broker, socat, a device
// simulator, the gateway itself); it is stopped when the test ends.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited
	err  error         // what Wait returned, once done
}

// StartProcess starts cmd, whose output the caller has pointed at out, and
// returns once out gets a new line containing ready (at once when ready is
// empty). The error says why it is not ready: it exited, or timeout passed
// and it was stopped. Either way the process is stopped when the test ends.
func StartProcess(t testing.TB, cmd *exec.Cmd, out *Lines, ready string, timeout time.Duration) (*Process, error) {
	t.Helper()
	name := filepath.Base(cmd.Path)
	next := out.Len()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Stop)
	if ready == "" {
		return p, nil
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		lines, more := out.Since(next)
		for _, line := range lines {
			if strings.Contains(line, ready) {
				return p, nil
			}
		}
		next += len(lines)
		select {
		case <-more:
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready: %v", name, p.err)
		case <-deadline.C:
			p.Stop()
			return nil, fmt.Errorf("%s not ready within %v", name, timeout)
		}
	}
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err waits for the process to exit and returns its exit status: nil for
// 0, an *exec.ExitError otherwise.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process, or to its whole group when it was started
// in one (SysProcAttr.Setpgid), so that the children it forked go with it.
func (p *Process) Signal(sig syscall.Signal) {
	if a := p.cmd.SysProcAttr; a != nil && a.Setpgid {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
		return
	}
	_ = p.cmd.Process.Signal(sig) // fails only once it has exited
}

// Stop sends SIGTERM, kills the process if it has not exited within 5s, and
// returns once it has exited; a no-op after that.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		p.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// ProcMem reads a process's current and peak resident set size, in MiB,
// from /proc.
func ProcMem(pid int) (rss, hwm float64, err error) {
	m, err := ProcStatus(pid)
	return m["VmRSS"], m["VmHWM"], err
}

// ProcStatus reads the sizes a process's /proc status gives in kB (VmRSS,
// VmHWM, RssAnon, RssFile, …), in MiB, by name.
func ProcStatus(pid int) (map[string]float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	sizes := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
			sizes[strings.TrimSuffix(f[0], ":")] = kb / 1024
		}
	}
	return sizes, nil
}
