// Package timerslack sets how late the kernel may end the process's timed
// sleeps: its timer slack, a per-thread setting, for every thread at once.
//
// The kernel ends a sleep anywhere in [deadline, deadline+slack], so that
// wake-ups falling close together are served by one. Its default of 50 µs
// is too fine for the Go runtime's own naps: the scheduler's monitor
// thread (sysmon) sleeps 20 µs at a time while any goroutine runs or sits
// in a system call, so each burst of a gateway's work becomes dozens of
// thread wake-ups. A slack of a millisecond lets those naps last about
// that long instead.
package timerslack
