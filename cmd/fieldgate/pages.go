package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// releaseStartupPages unmaps the executable's read-only pages (code and
// constant data) from the process, to be faulted back in from the page
// cache as they are next used.
//
// Start-up runs code the running gateway never touches again: every
// package's init, the TOML decoder and the config checks. The kernel maps
// file pages in blocks around each fault (64 KiB by default), so with
// inits spread over the whole binary nearly all of it stays mapped: 9.1 of
// the 10.8 MiB, where the running gateway uses 6.5–7 (docs/PERFORMANCE.md).
// Once dropped, what start-up alone used is ordinary page cache the kernel
// can reclaim first, and the gateway's resident set is what it runs on.
// The pages are the file's own and never written, so nothing is lost; the
// refaults that follow are minor ones, from memory.
func releaseStartupPages() error {
	var exe unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &exe); err != nil {
		return err
	}
	dev := fmt.Sprintf("%02x:%02x", unix.Major(exe.Dev), unix.Minor(exe.Dev))
	ino := strconv.FormatUint(exe.Ino, 10)
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	// A line: range perms offset dev inode [path].
	for line := range bytes.Lines(maps) {
		f := bytes.Fields(line)
		if len(f) < 5 || string(f[3]) != dev || string(f[4]) != ino || f[1][1] == 'w' {
			continue
		}
		lo, hi, _ := bytes.Cut(f[0], []byte("-"))
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("reading /proc/self/maps: %q", f[0])
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("madvise %s: %w", f[0], errno)
		}
	}
	return nil
}
