package bridge

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// pingreq is an MQTT PINGREQ packet.
var pingreq = []byte{0xC0, 0x00}

// liveConn is a broker connection watched for going silent without
// closing (a half-open link: a dead cellular path under a NAT, a broker
// host that lost power), which SPEC §4.8 wants noticed within 1.5 ×
// keepalive. paho notices only after keepalive plus its ping timeout plus
// two checks of up to 5 s, 46 s at the default 30 s. So liveConn sends a
// PINGREQ of its own once nothing has arrived for half the keepalive, and
// closes the connection when nothing arrives for another half after it:
// one keepalive after the last byte. The watcher sleeps until those
// deadlines, not on a tick, so a link with traffic wakes it once every
// half keepalive. paho then reports the loss and the upstream redials.
//
// paho writes each packet with one Write, as does the watcher, so their
// packets never interleave; the PINGRESP is one paho expects anyway.
type liveConn struct {
	net.Conn
	keepalive time.Duration
	logger    *slog.Logger
	lastRead  atomic.Int64 // UnixNano of the last byte received
	silent    atomic.Bool  // the watcher closed the link
	done      chan struct{}
	closeOnce sync.Once
}

func watchLink(c net.Conn, keepalive time.Duration, logger *slog.Logger) *liveConn {
	l := &liveConn{Conn: c, keepalive: keepalive, logger: logger, done: make(chan struct{})}
	l.lastRead.Store(time.Now().UnixNano())
	go l.watch()
	return l
}

// errSilent is what reading a link the watcher closed returns; paho takes
// the plain "use of closed network connection" for a close of its own and
// would not report the loss.
var errSilent = errors.New("the broker stopped answering without closing the link (half-open)")

func (l *liveConn) Read(b []byte) (int, error) {
	n, err := l.Conn.Read(b)
	if n > 0 {
		l.lastRead.Store(time.Now().UnixNano())
	}
	if err != nil && l.silent.Load() {
		err = errSilent
	}
	return n, err
}

// Close ends the watch with the connection.
func (l *liveConn) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Conn.Close()
}

func (l *liveConn) watch() {
	half := l.keepalive / 2
	t := time.NewTimer(half)
	defer t.Stop()
	var pingAt time.Time // the watcher's ping awaiting an answer
	for {
		select {
		case <-l.done:
			return
		case now := <-t.C:
			last := time.Unix(0, l.lastRead.Load())
			if !pingAt.IsZero() && !last.After(pingAt) {
				l.logger.Warn("the broker stopped answering without closing the link; closing it",
					"silent_for", now.Sub(last).Round(time.Millisecond), "keepalive", l.keepalive)
				l.silent.Store(true)
				_ = l.Close()
				return
			}
			pingAt = time.Time{}
			if quiet := now.Sub(last); quiet < half {
				t.Reset(half - quiet)
				continue
			}
			pingAt = now
			// A write into a link that stopped taking data can block:
			// closing the connection ends it.
			go func() { _, _ = l.Conn.Write(pingreq) }()
			t.Reset(half)
		}
	}
}
