package timerslack

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv marks the run of this test in a build without cgo.
const childEnv = "FIELDGATE_TIMERSLACK_CHILD"

// TestSetReachesEveryThread checks that Set changes the slack of threads
// that already exist, not only the caller's, and that threads started
// later inherit it. A build with cgo (as the race detector's is) cannot
// reach every thread, so there the test runs itself again, built without.
func TestSetReachesEveryThread(t *testing.T) {
	if err := Set(0); errors.Is(err, errors.ErrUnsupported) && os.Getenv(childEnv) == "" {
		runWithoutCgo(t)
		return
	} else if err != nil {
		t.Fatalf("Set(0): %v", err)
	}
	start := newThread(t).slack(t)
	before := make([]*thread, 4)
	for i := range before {
		before[i] = newThread(t)
	}
	const want = 3 * time.Millisecond
	if err := Set(want); err != nil {
		t.Fatalf("Set(%v): %v", want, err)
	}
	for i, th := range before {
		if got := th.slack(t); got != want {
			t.Errorf("thread %d of those started before Set: slack %v, want %v", i, got, want)
		}
	}
	if got := newThread(t).slack(t); got != want {
		t.Errorf("a thread started after Set: slack %v, want %v", got, want)
	}
	if err := Set(0); err != nil {
		t.Fatalf("Set(0): %v", err)
	}
	for i, th := range before {
		if got := th.slack(t); got != start {
			t.Errorf("thread %d after Set(0): slack %v, want the start's %v", i, got, start)
		}
	}
}

// runWithoutCgo builds this package's tests with cgo off and runs this
// test in that build.
func runWithoutCgo(t *testing.T) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "timerslack.test")
	build := exec.Command("go", "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test without cgo: %v\n%s", err, out)
	}
	run := exec.Command(bin, "-test.run=^"+t.Name()+"$", "-test.v", "-test.timeout=1m")
	run.Env = append(os.Environ(), childEnv+"=1")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("the test built without cgo: %v\n%s", err, out)
	}
	t.Logf("built without cgo:\n%s", out)
}

// thread is a goroutine locked to an OS thread of its own, answering
// questions about that thread until the test ends.
type thread struct{ ask chan chan time.Duration }

func newThread(t *testing.T) *thread {
	th := &thread{ask: make(chan chan time.Duration)}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		close(ready)
		for reply := range th.ask {
			reply <- getSlack()
		}
	}()
	<-ready
	t.Cleanup(func() { close(th.ask) })
	return th
}

func (th *thread) slack(t *testing.T) time.Duration {
	t.Helper()
	reply := make(chan time.Duration)
	th.ask <- reply
	select {
	case d := <-reply:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the thread did not answer")
		return 0
	}
}

// getSlack is the calling thread's timer slack.
func getSlack() time.Duration {
	n, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return -1
	}
	return time.Duration(n)
}
