package bridge

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"time"
)

const (
	// closeFlush bounds the hand-over of what is queued at Close, as
	// paho's DISCONNECT quiesce bounds the work in hand.
	closeFlush = disconnectQuiesce
	// keepBuffer is the largest buffer a coalesceConn keeps for the next
	// batch; a larger one, left by a burst, goes to the garbage collector.
	// It holds a poll cycle of 1,000 points in any format (about 100 KB in
	// json), which would otherwise allocate its batch afresh each second.
	keepBuffer = 256 << 10
)

// coalesceConn gathers the packets paho writes, one Write each, and hands
// them to the socket from a goroutine of its own: the packets written while
// the socket takes one batch go out together in the next, in one syscall
// and as few TCP segments as they fill. paho pays a syscall per packet
// otherwise, the largest single cost of publishing, and the broker a read
// per segment. Nothing waits for a timer: a packet written while the socket
// is idle goes out as soon as the goroutines ready to run have had their
// turn, which lets paho's writer queue the publishes in hand first (on one
// core, the gateway's default, a batch otherwise held about three).
//
// Write only queues, so paho's writer never blocks and hands over each
// publish at once. What is queued is bounded by what paho is asked to send:
// the publisher's in-flight window (a QoS 0 message counts as in flight
// until it has reached the socket: written and flushed tell when) and the
// few messages of statuses, results and discovery. The socket must take a
// batch within timeout per packet in it, as paho required of each packet;
// a dead link that takes nothing is also closed by liveConn's watch. Writes
// keep their order. A failed or stalled socket write fails every later
// Write, closes the connection and is what the next Read returns, so paho
// reports the loss. Close hands what is queued to the socket first, within
// closeFlush, so a DISCONNECT is not lost, unless a read has failed
// already: the link is gone, and paho reports its loss only once Close
// returns.
type coalesceConn struct {
	net.Conn
	timeout time.Duration // per packet of a batch

	mu       sync.Mutex
	queued   []byte
	packets  int    // in queued
	spare    []byte // the buffer of the batch being written, reused
	err      error  // once set, every Write returns it
	written  uint64
	flushed  uint64
	progress chan struct{} // closed at the next flush; nil until asked for
	closing  bool
	readErr  bool // a Read failed: the link is gone

	wake chan struct{} // cap 1: something is queued, or Close was called
	done chan struct{} // closed when the writer goroutine has ended
}

// errWriteStalled is a socket write that did not finish in time.
var errWriteStalled = errors.New("the broker stopped taking data (write timed out)")

func coalesce(c net.Conn, timeout time.Duration) *coalesceConn {
	w := &coalesceConn{Conn: c, timeout: timeout, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// Write queues one packet for the socket.
func (w *coalesceConn) Write(p []byte) (int, error) {
	w.mu.Lock()
	switch {
	case w.err != nil:
		err := w.err
		w.mu.Unlock()
		return 0, err
	case w.closing:
		w.mu.Unlock()
		return 0, net.ErrClosed
	}
	w.queued = append(w.queued, p...)
	w.packets++
	w.written += uint64(len(p))
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// SetWriteDeadline is ignored: Write does not block, and the writer keeps
// its own deadlines.
func (w *coalesceConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only, as SetWriteDeadline explains.
func (w *coalesceConn) SetDeadline(t time.Time) error { return w.Conn.SetReadDeadline(t) }

// Read reads from the socket. Once the writer has closed it after a failed
// write, it returns that failure, which paho reports as the connection's
// loss; it would take the plain "use of closed network connection" for a
// close of its own.
func (w *coalesceConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if err != nil {
		w.mu.Lock()
		w.readErr = true
		if w.err != nil && !errors.Is(w.err, net.ErrClosed) && errors.Is(err, net.ErrClosed) {
			err = w.err
		}
		w.mu.Unlock()
	}
	return n, err
}

// Close hands what is queued to the socket, then closes it.
func (w *coalesceConn) Close() error {
	w.mu.Lock()
	w.closing = true
	gone := w.readErr
	if !gone {
		// Under mu, so the writer cannot set a later one after it.
		_ = w.Conn.SetWriteDeadline(time.Now().Add(closeFlush))
	}
	w.mu.Unlock()
	if gone {
		_ = w.Conn.Close() // a write under way fails at once
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
	return w.Conn.Close()
}

// queuedBytes returns how many bytes were ever queued.
func (w *coalesceConn) queuedBytes() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

// flushedTo reports whether the socket has taken the first mark bytes
// queued, or why it never will.
func (w *coalesceConn) flushedTo(mark uint64) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.flushed >= mark {
		return true, nil
	}
	return false, w.err
}

// flushWait returns a channel closed when the socket has taken the next
// batch, or failed.
func (w *coalesceConn) flushWait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.progress == nil {
		w.progress = make(chan struct{})
		if w.err != nil || w.closing {
			close(w.progress) // nothing more will come
		}
	}
	return w.progress
}

// run is the writer: it hands each batch to the socket.
func (w *coalesceConn) run() {
	defer close(w.done)
	for {
		<-w.wake
		runtime.Gosched() // the packets about to be written join this batch
		w.mu.Lock()
		batch, packets, closing := w.queued, w.packets, w.closing
		w.queued, w.packets, w.spare = w.spare[:0], 0, nil
		var err error
		if len(batch) > 0 && !closing {
			err = w.Conn.SetWriteDeadline(time.Now().Add(w.timeout * time.Duration(packets)))
		}
		w.mu.Unlock()
		if len(batch) > 0 && err == nil {
			_, err = w.Conn.Write(batch)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = errWriteStalled
		}
		w.mu.Lock()
		if cap(batch) <= keepBuffer {
			w.spare = batch[:0]
		}
		if err == nil && len(batch) > 0 && !w.closing { // now: Close may have set its deadline meanwhile
			// The batch's deadline must not outlive it: liveConn's
			// PINGREQ, written to the socket directly, would fail once
			// it passed, and the link be taken for half-open.
			_ = w.Conn.SetWriteDeadline(time.Time{})
		}
		if err == nil {
			w.flushed += uint64(len(batch))
		} else if w.err == nil {
			w.err = err
		}
		if w.progress != nil {
			close(w.progress)
			w.progress = nil
		}
		more := len(w.queued) > 0
		w.mu.Unlock()
		switch {
		case err != nil:
			_ = w.Conn.Close() // the reader fails and paho reports w.err
			return
		case closing && !more:
			w.mu.Lock()
			w.err = net.ErrClosed
			w.mu.Unlock()
			return
		case more:
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}
