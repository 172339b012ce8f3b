package peers

import (
	"bytes"
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
	cmd  *exec.Cmd
	done chan struct{} // closed when socat has exited
	log  *readyWriter
}

// socatReady is what socat -d -d logs once both PTYs and their links exist.
var socatReady = []byte("starting data transfer loop")

// StartSocat starts socat with the links a and b in dir and stops it when the
// test ends. Without socat the test fails under CI=true and is skipped
// otherwise.
func StartSocat(t testing.TB, dir string) *Socat {
	t.Helper()
	if _, err := exec.LookPath("socat"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("socat is required: %v", err)
		}
		t.Skipf("socat not installed: %v", err)
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
	if s.cmd != nil {
		return
	}
	s.log = &readyWriter{ready: make(chan struct{})}
	cmd := exec.Command("socat", "-d", "-d",
		"pty,raw,echo=0,link="+s.A, "pty,raw,echo=0,link="+s.B)
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start socat: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a killed socat says nothing
		close(s.done)
	}()
	select {
	case <-s.log.ready:
	case <-s.done:
		s.cmd = nil
		s.t.Fatalf("socat exited before its PTYs were ready:\n%s", s.log)
	case <-time.After(10 * time.Second):
		s.Stop()
		s.t.Fatalf("socat PTYs not ready within 10s:\n%s", s.log)
	}
}

// Stop unplugs the cable: socat exits, its PTYs disappear and it removes the
// links. It is a no-op when socat is not running.
func (s *Socat) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		// A killed socat leaves its links behind.
		_ = os.Remove(s.A)
		_ = os.Remove(s.B)
	}
	s.cmd = nil
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

// readyWriter keeps socat's log and signals when the PTYs are ready.
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	seen  bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.seen && bytes.Contains(w.buf.Bytes(), socatReady) {
		w.seen = true
		close(w.ready)
	}
	return len(p), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
