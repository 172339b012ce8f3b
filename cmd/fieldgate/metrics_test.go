package main

import (
	"net"
	"testing"
)

// TestExposed tells the metrics addresses that warrant a warning: all but
// loopback ones.
func TestExposed(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9108", false},
		{"127.1.2.3:9108", false},
		{"[::1]:9108", false},
		{"0.0.0.0:9108", true},
		{"[::]:9108", true},
		{"192.168.1.20:9108", true},
		{"[fe80::1]:9108", true},
	} {
		a, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := exposed(a); got != tt.want {
			t.Errorf("exposed(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}
