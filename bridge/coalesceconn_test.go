package bridge

import (
	"io"
	"net"
	"net/url"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fieldgate/fieldgate/test/peers"
)

// countWrites is a socket that counts the writes made to it.
type countWrites struct {
	net.Conn
	n atomic.Int64
}

func (c *countWrites) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// TestCoalesceGathersWhatIsReady: the publishes paho hands to its writer
// goroutine one by one go out together on one core (the gateway's
// default). The coalescing writer yields before it takes a batch, so the
// goroutines ready to run queue their packets first; before, it took about
// three packets per syscall.
func TestCoalesceGathersWhatIsReady(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	broker := peers.StartMochi(t)
	var sock *countWrites
	o := mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("coalesce").SetAutoReconnect(false)
	o.SetCustomOpenConnectionFn(func(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
		c, err := net.DialTimeout("tcp", uri.Host, 5*time.Second)
		if err != nil {
			return nil, err
		}
		sock = &countWrites{Conn: c}
		return coalesce(sock, time.Second), nil
	})
	client := mqtt.NewClient(o)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer client.Disconnect(0)
	const publishes = 200
	before := sock.n.Load()
	toks := make([]mqtt.Token, publishes)
	for i := range toks {
		toks[i] = client.Publish("coalesce/test", 1, false, []byte("21.5"))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	if n := sock.n.Load() - before; n > publishes/20 {
		t.Errorf("%d publishes took %d socket writes, want at most %d", publishes, n, publishes/20)
	}
}

// TestCoalesceKeepsCycleBuffer: a poll cycle of 1,000 points (about 100 KB
// of packets in json) reuses the buffers of the cycles before it; it
// allocated them afresh each second when only 64 KiB were kept.
func TestCoalesceKeepsCycleBuffer(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the writer takes a cycle whole
	w := coalesce(discardingConn(t), time.Second)
	defer w.Close()
	packet := make([]byte, 100)
	cycle := func() {
		flushed := w.flushWait()
		for range 1000 {
			if _, err := w.Write(packet); err != nil {
				t.Fatal(err)
			}
		}
		<-flushed
	}
	for range 3 {
		cycle() // warm up: the writer's two buffers grow to a cycle
	}
	const cycles = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range cycles {
		cycle()
	}
	runtime.ReadMemStats(&after)
	if perCycle := (after.TotalAlloc - before.TotalAlloc) / cycles; perCycle > 10<<10 {
		t.Errorf("%d bytes allocated per cycle of 100 KB, want the buffers reused", perCycle)
	}
}

// discardingConn returns a loopback TCP connection whose peer reads and
// discards everything.
func discardingConn(t *testing.T) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		if s, err := ln.Accept(); err == nil {
			_, _ = io.Copy(io.Discard, s)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCoalesceLeavesNoWriteDeadline: once a batch is on the socket, the
// socket keeps no write deadline, so liveConn's own PINGREQ, written to the
// socket directly and later, is not refused as late (the link was then
// taken for half-open and closed while it worked).
func TestCoalesceLeavesNoWriteDeadline(t *testing.T) {
	c := discardingConn(t)
	const perPacket = 20 * time.Millisecond
	w := coalesce(c, perPacket)
	defer w.Close()
	mark := w.queuedBytes() + uint64(len(pingreq))
	flushed := w.flushWait()
	if _, err := w.Write(pingreq); err != nil {
		t.Fatal(err)
	}
	<-flushed
	if ok, err := w.flushedTo(mark); !ok {
		t.Fatalf("the batch was not written: %v", err)
	}
	time.Sleep(3 * perPacket) // the fault: the batch's deadline, had it stayed, is past
	if _, err := c.Write(pingreq); err != nil {
		t.Errorf("a write to the socket after the batch: %v", err)
	}
}
