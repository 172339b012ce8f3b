package serialport

import (
	"time"

	"github.com/fieldgate/fieldgate/internal/backoff"

	"github.com/fieldgate/fieldgate/config"
)

// Back-off between attempts to reopen a port (backoff.New): at most
// MinRetry after the first failure, doubling with each failure in a row up
// to MaxRetry. A USB adapter that comes back is found within MaxRetry; one
// that stays away costs an open(2) every MaxRetry at most.
const (
	MinRetry = time.Second
	MaxRetry = 30 * time.Second
)

// Keeper keeps the port at one path open across unplugging: after a fault it
// closes the port and reopens the same path once the back-off has passed. A
// port that faults within MaxRetry of opening counts as a failure in a row,
// so a flapping device backs off too; one that had been up longer starts
// the back-off over. Like its Port, a Keeper belongs to one goroutine.
type Keeper struct {
	path string
	line config.Line
	now  func() time.Time

	port     *Port
	openedAt time.Time
	backoff  *backoff.Backoff
	next     time.Time // no open attempt before this
	err      error     // why the port is not open
}

// NewKeeper returns a Keeper for the device at path; nothing is opened until
// the first call to Port.
func NewKeeper(path string, line config.Line) *Keeper {
	return &Keeper{path: path, line: line, now: time.Now, backoff: backoff.New(MinRetry, MaxRetry)}
}

// Port returns the open port, opening it if the back-off allows. Before then
// it returns the error that closed the port without trying again, so a poll
// loop may call it on every cycle; Next tells a loop how long to wait.
func (k *Keeper) Port() (*Port, error) {
	if k.port != nil {
		return k.port, nil
	}
	if k.now().Before(k.next) {
		return nil, k.err
	}
	p, err := Open(k.path, k.line)
	if err != nil {
		k.fail(err)
		return nil, err
	}
	k.port, k.openedAt = p, k.now()
	return p, nil
}

// Fault reports that err made the port unusable (any Read or Write error but
// ErrTimeout): the port is closed and Port reopens it after the back-off.
func (k *Keeper) Fault(err error) {
	if k.port == nil {
		return
	}
	// Closing a port that already failed may fail as well; err says why.
	_ = k.port.Close()
	k.port = nil
	if k.now().Sub(k.openedAt) >= MaxRetry {
		k.backoff.Reset()
	}
	k.fail(err)
}

func (k *Keeper) fail(err error) {
	k.next = k.now().Add(k.backoff.Next())
	k.err = err
}

// Next returns when Port will try to open the port again; the zero time
// while it is open or before the first attempt.
func (k *Keeper) Next() time.Time {
	if k.port != nil {
		return time.Time{}
	}
	return k.next
}

// Close closes the port if it is open.
func (k *Keeper) Close() error {
	if k.port == nil {
		return nil
	}
	err := k.port.Close()
	k.port = nil
	return err
}
