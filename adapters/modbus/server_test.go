package modbus

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/adapters/adapterstest"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/test/modbussim"
)

// Test plumbing around a real Modbus TCP server (simonvetter/modbus,
// serving a modbussim.Bank): a wire tap that records function codes, which
// the server's handlers never see, and the adapter under test with a
// recording Emitter.

// serve serves bank on addr ("127.0.0.1:0" for a free port) until the test
// ends (or Stop).
func serve(t testing.TB, bank *modbussim.Bank, addr string) *modbussim.Server {
	t.Helper()
	srv, err := modbussim.Start(addr, bank)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return srv
}

// seeder adapts bank to decodeFixture.
func seeder(bank *modbussim.Bank) func(table string, addr int, vals []uint16) {
	return func(table string, addr int, vals []uint16) { bank.Set(table, uint16(addr), vals...) }
}

// tap relays Modbus TCP between the adapter and the server and records the
// function code of every request that passes.
type tap struct {
	ln       net.Listener
	target   string
	wg       sync.WaitGroup
	mu       sync.Mutex
	fcs      []byte
	accepted int
	conns    []net.Conn
}

func newTap(t *testing.T, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{ln: ln, target: target}
	tp.wg.Go(tp.serve)
	t.Cleanup(tp.close)
	return tp
}

func (tp *tap) url() string { return "tcp://" + tp.ln.Addr().String() }

func (tp *tap) serve() {
	for {
		c, err := tp.ln.Accept()
		if err != nil {
			return
		}
		tp.wg.Go(func() { tp.relay(c) })
	}
}

func (tp *tap) relay(client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", tp.target, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	tp.mu.Lock()
	tp.accepted++
	tp.conns = append(tp.conns, client, server)
	tp.mu.Unlock()
	tp.wg.Go(func() {
		io.Copy(client, server)
		client.Close()
	})
	for {
		var hdr [8]byte // MBAP header and function code
		if _, err := io.ReadFull(client, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[4:])) - 2
		if n < 0 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(client, body); err != nil {
			return
		}
		tp.mu.Lock()
		tp.fcs = append(tp.fcs, hdr[7])
		tp.mu.Unlock()
		if _, err := server.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}

func (tp *tap) close() {
	tp.ln.Close()
	tp.mu.Lock()
	for _, c := range tp.conns {
		c.Close()
	}
	tp.mu.Unlock()
	tp.wg.Wait()
}

// counts returns how many requests of each function code passed so far.
func (tp *tap) counts() map[byte]int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	m := map[byte]int{}
	for _, fc := range tp.fcs {
		m[fc]++
	}
	return m
}

func (tp *tap) connections() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.accepted
}

// start runs an adapter for cfg, made by build, until the test ends.
func start(t *testing.T, cfg *Config) (*Adapter, *adapterstest.Recorder) {
	t.Helper()
	a := build(t, cfg)
	rec := &adapterstest.Recorder{}
	adapterstest.Run(t, a, rec)
	return a, rec
}

// build makes an adapter for cfg that logs to the test, with reconnection
// back-off shortened to keep the tests quick.
func build(t *testing.T, cfg *Config) *Adapter {
	t.Helper()
	a, err := New(cfg, adapters.Env{Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.retry = pace{first: 10 * time.Millisecond, max: 50 * time.Millisecond}
	return a
}

func deviceConfig(url string, interval time.Duration, points ...PointConfig) *Config {
	return &Config{
		Name: "dev", URL: url, UnitID: 1, MaxGap: 10, Points: points,
		Interval: config.Duration(interval), Timeout: config.Duration(time.Second),
	}
}

// pt is a point with the defaults the loader fills in.
func pt(name, table string, addr int, typ string, opts ...func(*PointConfig)) PointConfig {
	one := 1.0
	p := PointConfig{Name: name, Table: table, Address: addr, Type: typ, ByteOrder: "ABCD", Scale: &one}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func writable(p *PointConfig) { p.Writable = true }

func scaled(scale float64) func(*PointConfig) {
	return func(p *PointConfig) { p.Scale = &scale }
}
