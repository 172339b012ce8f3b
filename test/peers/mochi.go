package peers

import (
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Mochi is the embedded broker (github.com/mochi-mqtt/server/v2) running in
// the test process on a loopback port, allowing every client. Everything
// clients publish to it is recorded in Received, which survives Stop and
// Start, so a test sees what the broker accepted even while no subscriber
// is connected. Sessions and retained messages do not survive a restart.
type Mochi struct {
	Addr     string // host:port, the same across restarts
	Received *Inbox

	t   testing.TB
	mu  sync.Mutex // serialises Start and Stop
	srv *mqtt.Server

	// Apart from mu: Stop holds mu while the server waits for its client
	// goroutines, one of which may be in OnConnect.
	connMu   sync.Mutex
	connects map[string]int      // CONNECT packets accepted, by client id
	subs     map[string][]string // filters subscribed to, by client id
}

// StartMochi starts the broker on a free loopback port and stops it when the
// test ends.
func StartMochi(t testing.TB) *Mochi {
	t.Helper()
	m := &Mochi{Addr: "127.0.0.1:0", Received: newInbox(), t: t, connects: map[string]int{}, subs: map[string][]string{}}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// URL is the broker's address as a fieldgate url.
func (m *Mochi) URL() string { return "mqtt://" + m.Addr }

// Start starts the broker (again, on the same port); a no-op while running.
func (m *Mochi) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.srv != nil {
		return
	}
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		m.t.Fatalf("mochi: %v", err)
	}
	if err := srv.AddHook(&recorder{m: m}, nil); err != nil {
		m.t.Fatalf("mochi: %v", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: m.Addr})
	if err := srv.AddListener(l); err != nil {
		m.t.Fatalf("mochi listen on %s: %v", m.Addr, err)
	}
	m.Addr = l.Address()
	if err := srv.Serve(); err != nil {
		m.t.Fatalf("mochi: %v", err)
	}
	m.srv = srv
}

// Stop stops the broker, dropping every connection; a no-op when stopped.
func (m *Mochi) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.srv == nil {
		return
	}
	_ = m.srv.Close()
	m.srv = nil
}

// Connects counts the connections the broker has accepted from clientID,
// across restarts.
func (m *Mochi) Connects(clientID string) int {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	return m.connects[clientID]
}

// Subscriptions returns the filters clientID has subscribed to, in order,
// across restarts.
func (m *Mochi) Subscriptions(clientID string) []string {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	return slices.Clone(m.subs[clientID])
}

// recorder is the hook that records connections, subscriptions and
// publications.
type recorder struct {
	mqtt.HookBase
	m *Mochi
}

func (h *recorder) ID() string { return "fieldgate-test-recorder" }

func (h *recorder) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnPublished || b == mqtt.OnSubscribed
}

func (h *recorder) OnSubscribed(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	h.m.connMu.Lock()
	defer h.m.connMu.Unlock()
	for _, f := range pk.Filters {
		h.m.subs[cl.ID] = append(h.m.subs[cl.ID], f.Filter)
	}
}

func (h *recorder) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	h.m.connMu.Lock()
	defer h.m.connMu.Unlock()
	h.m.connects[cl.ID]++
	return nil
}

func (h *recorder) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	h.m.Received.add(Message{
		ClientID: cl.ID,
		Topic:    pk.TopicName,
		Payload:  append([]byte(nil), pk.Payload...),
		QoS:      pk.FixedHeader.Qos,
		Retained: pk.FixedHeader.Retain,
	})
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr returns a loopback host:port nobody listens on right now, for a
// peer that must be started (or restarted) at an address known in advance.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}
