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

// TestCoalesceLeavesNoWriteDeadline: once a batch is on the socket, the
// socket keeps no write deadline, so liveConn's own PINGREQ, written to the
// socket directly and later, is not refused as late (the link was then
// taken for half-open and closed while it worked).
func TestCoalesceLeavesNoWriteDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if s, err := ln.Accept(); err == nil {
			_, _ = io.Copy(io.Discard, s)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
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
