package modbus

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// replyServer is a Modbus TCP "device" on loopback that answers each
// connection's first request with the bytes it is given, then closes the
// connection, so a short answer ends in EOF instead of a timeout.
type replyServer struct {
	l       net.Listener
	replies chan []byte
}

func startReplyServer(t testing.TB) *replyServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &replyServer{l: l, replies: make(chan []byte, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.serve(c)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return s
}

// serve reads one request (its MBAP header says how long it is) and writes
// the next reply.
func (s *replyServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	head := make([]byte, 7)
	if _, err := io.ReadFull(c, head); err != nil {
		return
	}
	if _, err := io.ReadFull(c, make([]byte, int(binary.BigEndian.Uint16(head[4:]))-1)); err != nil {
		return
	}
	_, _ = c.Write(<-s.replies)
}

// tcpReply is the Modbus TCP answer to the first request of a connection
// (transaction 1) to unit 1: function code fc and data.
func tcpReply(fc byte, data ...byte) []byte {
	b := []byte{0, 1, 0, 0, 0, byte(2 + len(data)), 1, fc}
	return append(b, data...)
}

// FuzzTCPReply sends arbitrary answers, through a socket, to the gateway's
// Modbus TCP client reading three holding registers or three coils of unit
// 1: no answer may panic the client or come back as data of the wrong
// length, and an exception reads as one.
func FuzzTCPReply(f *testing.F) {
	f.Add(tcpReply(fcReadHolding, 6, 0, 1, 0, 2, 0, 3), false)
	f.Add(tcpReply(fcReadCoils, 1, 5), true)
	for _, code := range []byte{1, 2, 3, 4, 6, 0x0b, 0xff} {
		f.Add(tcpReply(fcReadHolding|0x80, code), false)
	}
	f.Add(tcpReply(fcReadHolding|0x80), false)                                    // an exception without its code
	f.Add(tcpReply(fcReadHolding), false)                                         // no byte count
	f.Add(tcpReply(fcReadCoils), true)                                            // no byte count
	f.Add(tcpReply(fcReadInput, 6, 0, 1, 0, 2, 0, 3), false)                      // another function's answer
	f.Add(tcpReply(fcReadHolding, 4, 0, 1, 0, 2), false)                          // two registers, not three
	f.Add(tcpReply(fcReadHolding, 6, 0, 1, 0, 2), false)                          // byte count beyond the data
	f.Add(tcpReply(fcReadHolding, 255), false)                                    // byte count beyond the frame
	f.Add(tcpReply(fcReadHolding, 6, 0, 1, 0, 2, 0, 3)[:9], false)                // truncated
	f.Add([]byte{0, 2, 0, 0, 0, 9, 1, fcReadHolding, 6, 0, 1, 0, 2, 0, 3}, false) // another transaction
	f.Add([]byte{0, 1, 0, 7, 0, 9, 1, fcReadHolding, 6, 0, 1, 0, 2, 0, 3}, false) // another protocol
	f.Add([]byte{0, 1, 0, 0, 0, 9, 2, fcReadHolding, 6, 0, 1, 0, 2, 0, 3}, false) // another unit
	f.Add([]byte{0, 1, 0, 0, 0, 0, 1}, false)                                     // MBAP length 0
	f.Add([]byte{0, 1, 0, 0, 0xff, 0xff, 1}, false)                               // MBAP length too long
	f.Add([]byte{0, 1, 0, 0, 0, 1, 1}, false)                                     // a unit id and nothing else
	srv := startReplyServer(f)
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, reply []byte, bits bool) {
		tr := newTCPTransport(srv.l.Addr().String(), time.Second, pace{time.Millisecond, time.Millisecond})
		if err := tr.open(); err != nil {
			t.Fatal(err)
		}
		defer tr.close()
		srv.replies <- reply
		tbl, want := holdingRegisters, 6
		if bits {
			tbl, want = coils, 1
		}
		data, err := tbl.read(tr.client(1, time.Second, log), 0, 3)
		if err == nil && len(data) != want {
			t.Fatalf("reply % x: %d bytes of data, want %d", reply, len(data), want)
		}
		if len(reply) == 9 && reply[7]&0x80 != 0 && err == nil {
			t.Fatalf("reply % x: an exception read as data", reply)
		}
	})
}
