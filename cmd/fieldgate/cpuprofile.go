//go:build cpuprofile

package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// A gateway built with -tags cpuprofile, as the bench harness builds it
// for its -cpuprofile flag, profiles its CPU from start until SIGTERM or
// SIGINT into the file $FIELDGATE_CPUPROFILE names. Release builds have no
// such code: a profile is taken of a scratch build, never served.
func init() {
	path := os.Getenv("FIELDGATE_CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		return
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		pprof.StopCPUProfile()
		_ = f.Close()
	}()
}
