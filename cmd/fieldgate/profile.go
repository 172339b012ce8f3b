//go:build profile

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// A gateway built with -tags profile, as the bench harness builds it for
// its -profile flag, profiles itself from start to exit: its CPU into
// $FIELDGATE_PROFILE.cpu.pprof and every allocation sampled meanwhile into
// $FIELDGATE_PROFILE.allocs.pprof, which also holds the heap in use at
// exit. Release builds have no such code: a profile is taken of a scratch
// build, never served.
func init() {
	prefix := os.Getenv("FIELDGATE_PROFILE")
	if prefix == "" {
		return
	}
	runtime.MemProfileRate = 4096 // fine enough to account for a heap of a few MB
	cpu, err := os.Create(prefix + ".cpu.pprof")
	if err == nil {
		err = pprof.StartCPUProfile(cpu)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	stopProfile = func() {
		pprof.StopCPUProfile()
		err := cpu.Close()
		allocs, e := os.Create(prefix + ".allocs.pprof")
		if e == nil {
			e = errors.Join(pprof.Lookup("allocs").WriteTo(allocs, 0), allocs.Close())
		}
		if err = errors.Join(err, e); err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
		}
	}
}
