package peers

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Socat is a pair of pseudo-terminals joined by socat, standing in for a
// serial cable: the code under test opens A as its serial port and the test
// plays the device on B. Stop unplugs the cable (both PTYs vanish, reads on
// them fail) and Start plugs it back in at the same paths.
type Socat struct {
	A, B string // symlinks to the two PTYs

	t    testing.TB
	proc *Process // nil while unplugged
	log  Lines    // across replugs
}

// socatReady is what socat -d -d logs once both PTYs and their links exist.
const socatReady = "starting data transfer loop"

// StartSocat starts socat with the links a and b in dir and stops it when the
// test ends. Without socat the test fails under CI=true and is skipped
// otherwise.
func StartSocat(t testing.TB, dir string) *Socat {
	t.Helper()
	if _, err := exec.LookPath("socat"); err != nil {
		Missing(t, "socat is required (apt-get install socat): %v", err)
	}
	s := &Socat{A: filepath.Join(dir, "a"), B: filepath.Join(dir, "b"), t: t}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start plugs the cable in: it starts socat and returns once both links
// exist. It is a no-op while socat runs.
func (s *Socat) Start() {
	s.t.Helper()
	if s.proc != nil {
		return
	}
	cmd := exec.Command("socat", "-d", "-d",
		"pty,raw,echo=0,link="+s.A, "pty,raw,echo=0,link="+s.B)
	cmd.Stderr = &s.log
	proc, err := StartProcess(s.t, cmd, &s.log, socatReady, 10*time.Second)
	if err != nil {
		s.t.Fatalf("socat PTYs: %v:\n%s", err, &s.log)
	}
	s.proc = proc
}

// Stop unplugs the cable: socat exits, its PTYs disappear and the links go.
// It is a no-op when socat is not running.
func (s *Socat) Stop() {
	if s.proc == nil {
		return
	}
	s.proc.Stop()
	s.proc = nil
	// socat removes its links on SIGTERM, but a killed one leaves them.
	_ = os.Remove(s.A)
	_ = os.Remove(s.B)
}

// Device opens end B for the test to play the device on; reads honour
// SetReadDeadline. It is closed when the test ends; after Stop and Start it
// must be opened again, as a replugged device would be.
func (s *Socat) Device() *os.File {
	s.t.Helper()
	f, err := os.OpenFile(s.B, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		s.t.Fatalf("open device end: %v", err)
	}
	s.t.Cleanup(func() { _ = f.Close() })
	return f
}

// Clog makes end A stop draining, as a USB adapter that stopped passing data
// on does: socat stops (SIGSTOP), and A's kernel buffer is filled, so the
// next write to A blocks. unclog lets it drain again.
func (s *Socat) Clog() (unclog func()) {
	s.t.Helper()
	s.proc.Signal(syscall.SIGSTOP)
	f, err := os.OpenFile(s.A, os.O_WRONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		s.t.Fatalf("open end A: %v", err)
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		s.t.Fatal(err)
	}
	// The kernel moves bytes between a PTY's buffers in the background, so
	// room can appear just after a write found none: fill until writes
	// have found none for a while.
	junk := make([]byte, 4096)
	for full := 0; full < 5; {
		var werr error
		if err := rc.Write(func(fd uintptr) bool {
			_, werr = syscall.Write(int(fd), junk)
			return true // never wait: EAGAIN means full
		}); err != nil {
			s.t.Fatal(err)
		}
		switch {
		case errors.Is(werr, syscall.EAGAIN) && len(junk) > 1:
			junk = junk[:len(junk)/2]
		case errors.Is(werr, syscall.EAGAIN):
			full++
			time.Sleep(10 * time.Millisecond) // let the kernel move what it will
		case werr != nil:
			s.t.Fatalf("fill end A: %v", werr)
		default:
			full = 0
		}
	}
	var once sync.Once
	unclog = func() { once.Do(func() { s.proc.Signal(syscall.SIGCONT) }) }
	s.t.Cleanup(unclog)
	return unclog
}
