package main

import (
	"runtime"
	"testing"
)

// TestOneCore: the gateway runs its Go code on one core by default, and
// on as many as GOMAXPROCS asks for when it is set.
func TestOneCore(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []struct {
		env  string
		want int
	}{{"", 1}, {"2", 2}} {
		runtime.GOMAXPROCS(2)
		t.Setenv("GOMAXPROCS", c.env)
		oneCore()
		if got := runtime.GOMAXPROCS(0); got != c.want {
			t.Errorf("GOMAXPROCS=%q: running on %d cores, want %d", c.env, got, c.want)
		}
	}
}
