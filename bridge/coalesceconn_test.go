package bridge

import (
	"io"
	"net"
	"testing"
	"time"
)

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
