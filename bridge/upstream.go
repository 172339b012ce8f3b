package bridge

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldgate/fieldgate/internal/backoff"
	"github.com/fieldgate/fieldgate/internal/ratelog"
)

const (
	// stableAfter is how long a connection must have lasted for the next
	// reconnect to start the back-off afresh, so a flapping broker is not
	// hammered.
	stableAfter = 10 * time.Second

	// The stop budget, counted from the stop request: confirmations of what
	// is in flight are awaited until drainBudget, `offline` until
	// offlineBudget, then the DISCONNECT gets disconnectQuiesce.
	drainBudget   = 3 * time.Second
	offlineBudget = 4500 * time.Millisecond

	// quietInterval is how often at most a warning of one kind that can
	// come in floods (refused commands, oversized messages) is logged.
	quietInterval = 10 * time.Second
)

// upstream is one [[upstream]] for as long as its settings stay unchanged:
// its connection, the publisher of its readings, its command worker and
// what it keeps on the broker beside readings (adapter statuses, Home
// Assistant discovery). Its run goroutine dials, runs the publisher and
// stops; the others it starts end with it.
type upstream struct {
	b      *Bridge
	s      *settings
	logger *slog.Logger
	quiet  *ratelog.Limiter // for warnings that can come in floods

	ctx    context.Context
	cancel context.CancelFunc
	stopAt atomic.Int64 // UnixNano of the stop request
	done   chan struct{}
	wg     sync.WaitGroup // every goroutine but run's
	hb     heartbeat      // run's

	conn     *conn
	pub      *publisher
	commands *commandWorker // nil when the upstream takes no commands
	cmdLink  *commandLink   // the commands' own connection; nil when they share conn or there are none
	statuses *statusPublisher
	disco    *discovery        // nil: no Home Assistant discovery
	spb      *sparkplugSession // format sparkplug only
}

// newUpstream prepares an upstream; discovered and dropped (its count of
// messages too large to read) belong to its name and outlive it.
func newUpstream(b *Bridge, s *settings, discovered map[string]string, dropped *atomic.Uint64) *upstream {
	ctx, cancel := context.WithCancel(context.Background())
	u := &upstream{b: b, s: s, logger: b.logger.With("upstream", s.name), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	u.quiet = ratelog.New(u.logger, quietInterval)
	u.conn = newConn(ctx, s, u.logger, &u.hb)
	u.conn.drops = inboundDrops{count: dropped, log: u.quiet}
	switch {
	case s.commands && s.clean:
		u.commands = newCommandWorker(u, u.conn)
		u.conn.drops.refuse = u.commands.refuseTooLarge
	case s.commands:
		u.cmdLink = newCommandLink(u)
		u.commands = newCommandWorker(u, u.cmdLink.conn)
		u.cmdLink.w = u.commands
		u.cmdLink.conn.drops = inboundDrops{count: dropped, log: u.quiet, refuse: u.commands.refuseTooLarge}
	}
	if s.format == formatSparkplug {
		u.spb = newSparkplugSession(u)
	}
	u.pub = newPublisher(u)
	u.statuses = newStatusPublisher(u)
	u.disco = newDiscovery(u, discovered)
	return u
}

// stop asks the upstream to stop; it then stops within the stop budget.
func (u *upstream) stop() {
	u.hb.beat(offlineBudget)
	u.stopAt.CompareAndSwap(0, time.Now().UnixNano())
	u.cancel()
}

func (u *upstream) stopDeadline(budget time.Duration) time.Time {
	return time.Unix(0, u.stopAt.Load()).Add(budget)
}

func (u *upstream) run() {
	defer close(u.done)
	defer u.wg.Wait()
	u.wg.Go(u.statuses.run)
	if u.spb != nil {
		defer u.spb.close()
		u.spb.start(&u.wg)
	}
	bo := backoff.New(time.Second, u.s.reconnectMax)
	if !u.conn.setUp(bo) {
		return
	}
	if u.commands != nil {
		u.wg.Go(u.commands.execute)
		switch {
		case u.spb != nil: // a Sparkplug session takes its commands and their results
		case u.cmdLink != nil:
			u.wg.Go(u.cmdLink.run)
			u.wg.Go(u.commands.publishResults)
		default:
			u.conn.client.AddRoute(u.s.commandFilter(), u.commands.onCommand)
			u.wg.Go(u.commands.publishResults)
		}
	}
	if u.disco != nil {
		u.wg.Go(u.disco.run)
	}
	u.pub.start()
	abandonBy := func() time.Time { return u.stopDeadline(drainBudget) }
	for delay := time.Duration(0); ; {
		ok, sessionPresent := u.conn.dial(bo, delay, abandonBy)
		if ok && u.ctx.Err() == nil {
			u.connected(sessionPresent)
			up := time.Now()
			err := u.pub.pump()
			u.conn.online.Store(false)
			u.statuses.disconnected()
			if u.ctx.Err() == nil {
				u.logger.Warn("connection lost", "err", err, "in_flight", len(u.pub.flights))
				if u.conn.isOpen() { // a publish failed on a live link, or the primary host left: start afresh
					if u.spb != nil {
						u.conn.sayOffline(time.Now().Add(deathWait)) // the NDEATH, which the DISCONNECT discards
					}
					u.conn.disconnect()
				}
				u.pub.afterLoss()
				if time.Since(up) >= stableAfter {
					bo.Reset()
					delay = 0
				} else {
					delay = bo.Next()
				}
				continue
			}
		}
		if ok {
			u.shutdown()
		}
		return
	}
}

// connected runs at each new link: birth message, command subscription,
// every adapter status, Home Assistant discovery; readings follow.
func (u *upstream) connected(sessionPresent bool) {
	u.logger.Info("connected", "broker", u.conn.brokerName(), "session_present", sessionPresent,
		"backlog_from", u.pub.next, "resending", len(u.pub.flights))
	u.conn.connected()
	if u.spb != nil {
		u.spb.connected() // births instead of statuses and discovery
		return
	}
	switch {
	case u.commands != nil && u.cmdLink == nil:
		u.commands.subscribe()
	case sessionPresent:
		// The session may hold a command subscription from before commands
		// moved to their own connection (or were turned off): the broker
		// would queue commands in it during every outage.
		u.conn.client.Unsubscribe(u.s.commandFilter())
	}
	u.statuses.connected()
	u.disco.connected()
}

// shutdown ends a stopped upstream's link: it waits, within the stop
// budget, for what is in flight to be confirmed, then says `offline`.
func (u *upstream) shutdown() {
	u.pub.drain(u.stopDeadline(drainBudget))
	if u.conn.isOpen() {
		u.conn.sayOffline(u.stopDeadline(offlineBudget))
		_, _ = u.pub.reap() // confirmations that came in meanwhile
	}
	u.conn.disconnect()
	u.logger.Info("disconnected", "unconfirmed", len(u.pub.flights), "next_seq", u.b.buf.Cursor(u.s.name))
}
