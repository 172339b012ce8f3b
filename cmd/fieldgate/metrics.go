package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sort"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// serveMetrics serves Prometheus metrics on /metrics and a health check on
// /healthz at addr until ctx ends. The listener is opened before it returns,
// so a port already in use is reported at start-up.
func (g *gateway) serveMetrics(ctx context.Context, addr string) (done <-chan struct{}, err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		g.writeMetrics(w)
		vm.WriteProcessMetrics(w)
		vm.WriteFDMetrics(w)
	})
	mux.HandleFunc("GET /healthz", g.healthz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	g.log.Info("serving metrics", "listen", l.Addr().String())
	if exposed(l.Addr()) {
		g.log.Warn("metrics and health are served without authentication beyond this machine: "+
			"bind metrics_listen to 127.0.0.1, firewall the port, or put a reverse proxy with authentication in front",
			"listen", l.Addr().String())
	}
	return stopped, nil
}

// exposed reports whether a listener can be reached from other machines:
// any address but a loopback one (0.0.0.0 and :: included).
func exposed(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return !ok || !t.IP.IsLoopback()
}

// writeMetrics writes the gateway's metrics, read from the live components
// at scrape time so removed adapters and upstreams disappear with them.
func (g *gateway) writeMetrics(w io.Writer) {
	vm.WriteGaugeUint64(w, fmt.Sprintf(`fieldgate_build_info{version=%q,commit=%q,goversion=%q}`,
		version, commit, runtime.Version()), 1)
	for _, a := range g.adapterHealth() {
		vm.WriteCounterUint64(w, fmt.Sprintf(`fieldgate_readings_total{adapter=%q}`, a.name), a.readings)
		vm.WriteGaugeUint64(w, fmt.Sprintf(`fieldgate_adapter_up{adapter=%q}`, a.name), b2u(a.reported && a.err == ""))
	}
	st := g.buf.Stats()
	vm.WriteGaugeUint64(w, "fieldgate_buffer_bytes", uint64(st.Bytes))
	vm.WriteGaugeUint64(w, "fieldgate_buffer_max_bytes", uint64(g.maxBuffer))
	vm.WriteGaugeUint64(w, "fieldgate_buffer_first_seq", st.First)
	vm.WriteGaugeUint64(w, "fieldgate_buffer_next_seq", st.Next)
	vm.WriteCounterUint64(w, "fieldgate_buffer_dropped_total", st.Dropped)
	vm.WriteCounterUint64(w, "fieldgate_buffer_corrupt_records_total", st.Corrupt)
	vm.WriteCounterUint64(w, "fieldgate_buffer_fsyncs_total", st.Syncs)
	vm.WriteCounterUint64(w, "fieldgate_buffer_append_errors_total", g.appendErrors.Load())
	for _, u := range g.bridge.Upstreams() {
		vm.WriteGaugeUint64(w, fmt.Sprintf(`fieldgate_upstream_connected{upstream=%q}`, u.Name), b2u(u.Connected))
		if u.TakesCommands {
			vm.WriteGaugeUint64(w, fmt.Sprintf(`fieldgate_upstream_commands_connected{upstream=%q}`, u.Name), b2u(u.CommandsConnected))
		}
		vm.WriteGaugeUint64(w, fmt.Sprintf(`fieldgate_upstream_backlog{upstream=%q}`, u.Name), st.Next-max(st.Cursors[u.Name], st.First))
		vm.WriteCounterUint64(w, fmt.Sprintf(`fieldgate_commands_refused_total{upstream=%q}`, u.Name), u.CommandsRefused)
		vm.WriteCounterUint64(w, fmt.Sprintf(`fieldgate_upstream_oversize_dropped_total{upstream=%q}`, u.Name), u.Dropped)
	}
}

// health is what /healthz reports.
type health struct {
	Status    string                    `json:"status"` // ok, degraded (a device or broker is down) or failing (readings are being lost)
	Adapters  map[string]string         `json:"adapters"`
	Upstreams map[string]upstreamHealth `json:"upstreams"`
}

type upstreamHealth struct {
	Connected bool   `json:"connected"`
	Backlog   uint64 `json:"backlog"`
	// CommandsConnected is left out for an upstream that takes no
	// commands.
	CommandsConnected *bool `json:"commands_connected,omitempty"`
}

// healthz answers 200 while readings are being kept, with what is down in
// the body, and 503 when the buffer refuses readings.
func (g *gateway) healthz(w http.ResponseWriter, _ *http.Request) {
	h := health{Status: "ok", Adapters: map[string]string{}, Upstreams: map[string]upstreamHealth{}}
	for _, a := range g.adapterHealth() {
		switch {
		case !a.reported: // not a word yet: neither ok nor a fault
			h.Adapters[a.name], h.Status = "pending", "degraded"
		case a.err != "":
			h.Adapters[a.name], h.Status = "error: "+a.err, "degraded"
		default:
			h.Adapters[a.name] = "ok"
		}
	}
	st := g.buf.Stats()
	for _, u := range g.bridge.Upstreams() {
		uh := upstreamHealth{Connected: u.Connected, Backlog: st.Next - max(st.Cursors[u.Name], st.First)}
		if u.TakesCommands {
			uh.CommandsConnected = &u.CommandsConnected
		}
		h.Upstreams[u.Name] = uh
		if !u.Connected || u.TakesCommands && !u.CommandsConnected {
			h.Status = "degraded"
		}
	}
	code := http.StatusOK
	if g.appendFailing.Load() {
		h.Status, code = "failing", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(h); err != nil {
		g.log.Debug("healthz", "err", err)
	}
}

// adapterState is one adapter's counters as the metrics see them.
type adapterState struct {
	name     string
	readings uint64
	err      string
	reported bool // it has reported a status
}

func (g *gateway) adapterHealth() []adapterState {
	g.mu.Lock()
	out := make([]adapterState, 0, len(g.run))
	for name, r := range g.run {
		fault, reported := r.em.fault()
		out = append(out, adapterState{name: name, readings: r.em.readings.Load(), err: fault, reported: reported})
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
