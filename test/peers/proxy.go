package peers

import (
	"bufio"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy relays TCP connections from a loopback port to a broker, MQTT
// packet by packet, so a test can inject the faults of a network between a
// gateway and its broker: cut the link (the broker sees the socket drop
// without a DISCONNECT and publishes the will), reset it, let it go silent
// without closing (half-open), add latency, throttle it, or drop packets of
// chosen types. New connections are relayed again after a cut.
type Proxy struct {
	Addr string

	target string
	l      net.Listener
	wg     sync.WaitGroup

	mu      sync.Mutex
	changed chan struct{}      // closed and replaced when a rule changes
	links   map[*link]struct{} // open relayed connections
	drop    map[dropRule]bool  // packet types not forwarded
	delay   time.Duration      // added before forwarding each packet
	rate    int                // client→broker bytes per second; 0: unlimited
	seen    map[dropRule]int   // packets forwarded, by direction and type
}

// One relayed connection; silenced links forward nothing, in either
// direction, until the test ends or they are cut.
type link struct {
	client, broker net.Conn
	silenced       bool
}

type dropRule struct {
	fromBroker bool
	typ        byte
}

// MQTT control packet types, for Drop and Seen.
const (
	Connect    byte = 1
	Connack    byte = 2
	Publish    byte = 3
	Puback     byte = 4
	Pubrec     byte = 5
	Pubrel     byte = 6
	Pubcomp    byte = 7
	Subscribe  byte = 8
	Suback     byte = 9
	Pingreq    byte = 12
	Pingresp   byte = 13
	Disconnect byte = 14
	FromBroker      = true
	FromClient      = false
)

// StartProxy relays to target (host:port) until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{Addr: l.Addr().String(), target: target, l: l, changed: make(chan struct{}),
		links: map[*link]struct{}{}, drop: map[dropRule]bool{}, seen: map[dropRule]int{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = l.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// URL is the proxy's address as a fieldgate url.
func (p *Proxy) URL() string { return "mqtt://" + p.Addr }

// Cut drops every relayed connection.
func (p *Proxy) Cut() { p.closeAll(false) }

// Reset drops every relayed connection with a TCP reset, as a middlebox
// that forgot the connection does.
func (p *Proxy) Reset() { p.closeAll(true) }

func (p *Proxy) closeAll(reset bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		for _, c := range []net.Conn{l.client, l.broker} {
			if tc, ok := c.(*net.TCPConn); ok && reset {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
	}
	clear(p.links)
	p.signal()
}

// Silence makes every connection open now forward nothing more, in either
// direction, without closing: the link is half-open, as when a cellular
// path dies under a NAT. Connections made afterwards are relayed.
func (p *Proxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		l.silenced = true
	}
	p.signal()
}

// Delay adds d before each packet is forwarded; 0 removes it.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
	p.signal()
}

// Throttle limits what the client sends to bytesPerSecond; 0 removes the
// limit.
func (p *Proxy) Throttle(bytesPerSecond int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = bytesPerSecond
	p.signal()
}

// Drop discards, from now on, packets of the given types sent by the broker
// (fromBroker) or the client; Drop with no types forwards everything again.
func (p *Proxy) Drop(fromBroker bool, types ...byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for r := range p.drop {
		if r.fromBroker == fromBroker {
			delete(p.drop, r)
		}
	}
	for _, typ := range types {
		p.drop[dropRule{fromBroker, typ}] = true
	}
	p.signal()
}

// Seen counts the packets of a type forwarded (or dropped) so far from the
// broker or the client.
func (p *Proxy) Seen(fromBroker bool, typ byte) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[dropRule{fromBroker, typ}]
}

// AwaitSeen waits until n packets of a type have come from the broker or
// the client, failing the test after timeout.
func (p *Proxy) AwaitSeen(t testing.TB, timeout time.Duration, fromBroker bool, typ byte, n int) {
	t.Helper()
	end := time.NewTimer(timeout)
	defer end.Stop()
	for {
		p.mu.Lock()
		got, changed := p.seen[dropRule{fromBroker, typ}], p.changed
		p.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-end.C:
			t.Fatalf("proxy: %d packets of type %d from broker=%t within %v, want %d", got, typ, fromBroker, timeout, n)
		}
	}
}

func (p *Proxy) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) accept() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return // closed at cleanup
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		l := &link{client: in, broker: out}
		p.mu.Lock()
		p.links[l] = struct{}{}
		p.signal()
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(l, false) })
		p.wg.Go(func() { p.pipe(l, true) })
	}
}

// pipe forwards one direction of l packet by packet, applying the rules;
// when either side ends, both close.
func (p *Proxy) pipe(l *link, fromBroker bool) {
	src, dst := l.client, l.broker
	if fromBroker {
		src, dst = l.broker, l.client
	}
	defer func() {
		_ = dst.Close()
		_ = src.Close()
		p.mu.Lock()
		delete(p.links, l)
		p.signal()
		p.mu.Unlock()
	}()
	r := bufio.NewReader(src)
	for {
		pkt, err := readPacket(r)
		if err != nil {
			return
		}
		delay, rate, drop, ok := p.rules(l, fromBroker, pkt[0]>>4)
		if !ok {
			return
		}
		if rate > 0 {
			delay += time.Duration(len(pkt)) * time.Second / time.Duration(rate)
		}
		time.Sleep(delay) // the fault being injected, not synchronisation
		if drop {
			continue
		}
		if _, err := dst.Write(pkt); err != nil {
			return
		}
	}
}

// rules counts a packet and says what to do with it, waiting while l is
// silenced; ok is false once l was cut.
func (p *Proxy) rules(l *link, fromBroker bool, typ byte) (delay time.Duration, rate int, drop, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l.silenced {
		if _, open := p.links[l]; !open {
			return 0, 0, false, false
		}
		changed := p.changed
		p.mu.Unlock()
		<-changed
		p.mu.Lock()
	}
	key := dropRule{fromBroker, typ}
	p.seen[key]++
	p.signal()
	if !fromBroker {
		rate = p.rate
	}
	return p.delay, rate, p.drop[key], true
}

// readPacket reads one MQTT control packet: the fixed header's first byte,
// the remaining length (a varint of up to four bytes) and that many bytes.
func readPacket(r *bufio.Reader) ([]byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	pkt := []byte{first}
	length, shift := 0, 0
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		pkt = append(pkt, b)
		length |= int(b&0x7f) << shift
		if b&0x80 == 0 || i == 3 {
			break
		}
		shift += 7
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(pkt, body...), nil
}

// Silent is a loopback port that accepts connections and never answers, like
// a broker behind a black hole; it closes them when the test ends.
func Silent(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}
