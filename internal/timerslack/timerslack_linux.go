package timerslack

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Set makes d the timer slack of every thread of the process, those that
// exist and those started later; 0 returns each to the slack the process
// started with. It fails with an error matching errors.ErrUnsupported in
// binaries built with cgo, whose threads Go cannot reach (the race
// detector's builds among them).
func Set(d time.Duration) error {
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_TIMERSLACK, uintptr(d.Nanoseconds()), 0); errno != 0 {
		return errno
	}
	return nil
}
