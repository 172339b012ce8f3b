package peers

import (
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

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
	packets  map[string][]Packet // every packet read, by client id
	more     chan struct{}       // closed and replaced at each packet
}

// Packet is one packet a client sent, as the broker read it.
type Packet struct {
	Type   string // as mochi names them: Connect, Publish, Subscribe, Disconnect, …
	Topic  string // Publish
	QoS    byte   // Publish
	Retain bool   // Publish
	// Connect: the clean session flag and the will (WillTopic "": none).
	Clean       bool
	WillTopic   string
	WillPayload []byte
	WillQoS     byte
	WillRetain  bool
	Filters     map[string]byte // Subscribe: the QoS asked for each filter
}

// StartMochi starts the broker on a free loopback port and stops it when the
// test ends.
func StartMochi(t testing.TB) *Mochi {
	t.Helper()
	m := &Mochi{Addr: "127.0.0.1:0", Received: newInbox(), t: t, connects: map[string]int{}, subs: map[string][]string{},
		packets: map[string][]Packet{}, more: make(chan struct{})}
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
	nl, err := net.Listen("tcp", m.Addr)
	if err != nil {
		m.t.Fatalf("mochi listen on %s: %v", m.Addr, err)
	}
	l := &tcpListener{l: nl, served: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	if err := srv.AddListener(l); err != nil {
		m.t.Fatalf("mochi: %v", err)
	}
	m.Addr = nl.Addr().String()
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

// AwaitPackets waits until done, called with the packets clientID has
// sent so far (in order, across restarts), returns true, and returns
// them: they show what no subscriber can see (the clean session flag, the
// will, the QoS asked for a subscription, a DISCONNECT) and its order. It
// fails the test after timeout.
func (m *Mochi) AwaitPackets(t testing.TB, timeout time.Duration, clientID string, done func([]Packet) bool) []Packet {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		m.connMu.Lock()
		ps, more := slices.Clone(m.packets[clientID]), m.more
		m.connMu.Unlock()
		if done(ps) {
			return ps
		}
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("waited %v for the packets of %s; got %+v", timeout, clientID, ps)
			return nil
		}
	}
}

// recorder is the hook that records connections, subscriptions,
// publications and every packet read.
type recorder struct {
	mqtt.HookBase
	m *Mochi
}

func (h *recorder) ID() string { return "fieldgate-test-recorder" }

func (h *recorder) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnPublished || b == mqtt.OnSubscribed || b == mqtt.OnPacketRead
}

func (h *recorder) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	p := Packet{Type: packets.PacketNames[pk.FixedHeader.Type]}
	id := cl.ID
	switch pk.FixedHeader.Type {
	case packets.Connect:
		id = pk.Connect.ClientIdentifier
		p.Clean = pk.Connect.Clean
		if pk.Connect.WillFlag {
			p.WillTopic, p.WillQoS, p.WillRetain = pk.Connect.WillTopic, pk.Connect.WillQos, pk.Connect.WillRetain
			p.WillPayload = slices.Clone(pk.Connect.WillPayload)
		}
	case packets.Publish:
		p.Topic, p.QoS, p.Retain = pk.TopicName, pk.FixedHeader.Qos, pk.FixedHeader.Retain
	case packets.Subscribe:
		p.Filters = map[string]byte{}
		for _, f := range pk.Filters {
			p.Filters[f.Filter] = f.Qos
		}
	}
	h.m.connMu.Lock()
	defer h.m.connMu.Unlock()
	h.m.packets[id] = append(h.m.packets[id], p)
	close(h.m.more)
	h.m.more = make(chan struct{})
	return pk, nil
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
	h.m.Received.Add(Message{
		ClientID: cl.ID,
		Topic:    pk.TopicName,
		Payload:  append([]byte(nil), pk.Payload...),
		QoS:      pk.FixedHeader.Qos,
		Retained: pk.FixedHeader.Retain,
	})
}

// tcpListener is mochi's listener for the tests. Mochi's own TCP listener
// lets a connection still being established when the server closes add
// itself to the server's client count while Close waits on it (a data race,
// and sometimes a Close that never returns); this one closes such
// connections and waits for them before the server waits for its clients.
type tcpListener struct {
	l      net.Listener
	served chan struct{}  // closed when Serve returns
	wg     sync.WaitGroup // establishing goroutines
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // accepted and not yet ended
}

func (l *tcpListener) ID() string              { return "tcp" }
func (l *tcpListener) Address() string         { return l.l.Addr().String() }
func (l *tcpListener) Protocol() string        { return "tcp" }
func (l *tcpListener) Init(*slog.Logger) error { return nil }

// Serve hands each accepted connection to establish until Close.
func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	for {
		c, err := l.l.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Go(func() {
			_ = establish("tcp", c)
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		})
	}
}

// Close stops accepting, lets mochi close its clients, closes what is left
// and waits for every connection's goroutine.
func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	_ = l.l.Close()
	<-l.served // no connection is added from now on
	closeClients("tcp")
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
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
