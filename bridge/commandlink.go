package bridge

import (
	"context"
	"log/slog"
	"time"

	"github.com/fieldgate/fieldgate/internal/backoff"
)

// commandClientSuffix makes the command connection's client id from the
// upstream's: a broker allows one connection per client id.
const commandClientSuffix = "-cmd"

// commandLink is the second connection of an upstream whose readings keep a
// persistent session: it carries only the commands, in a clean session, so
// the broker never holds a command for the gateway while it is away and a
// command reaches the gateway only while it is connected (see the package
// doc, Commands). It has no will and publishes no birth message: `online`
// and `offline` describe the readings' connection.
type commandLink struct {
	hb     heartbeat // run's
	conn   *conn
	w      *commandWorker
	logger *slog.Logger
	ctx    context.Context // the upstream's: ends at its stop
}

// commandSettings derives the command connection's settings from the
// upstream's.
func commandSettings(s *settings) *settings {
	c := *s
	c.clientID += commandClientSuffix
	c.clean = true
	c.commandsOnly = true
	return &c
}

func newCommandLink(u *upstream) *commandLink {
	logger := u.logger.With("connection", "commands")
	l := &commandLink{logger: logger, ctx: u.ctx}
	l.conn = newConn(u.ctx, commandSettings(u.s), logger, &l.hb)
	return l
}

// run connects and subscribes, again after every loss, until the upstream
// stops; it then disconnects at once, since it has nothing to deliver.
func (l *commandLink) run() {
	bo := backoff.New(time.Second, l.conn.s.reconnectMax)
	if !l.conn.setUp(bo) {
		return
	}
	l.conn.client.AddRoute(l.conn.s.commandFilter(), l.w.onCommand)
	abandon := func() time.Time { return time.Now() } // a stop abandons an attempt under way
	for delay := time.Duration(0); ; {
		if ok, _ := l.conn.dial(bo, delay, abandon); !ok {
			return
		}
		up := time.Now()
		l.conn.online.Store(true)
		l.hb.rest() // waiting for a loss promises nothing
		l.logger.Debug("connected", "broker", l.conn.brokerName())
		l.w.subscribe()
		select {
		case <-l.ctx.Done():
			l.conn.online.Store(false)
			l.conn.disconnect()
			return
		case err := <-l.conn.lost:
			l.conn.online.Store(false)
			l.logger.Warn("connection lost", "err", err)
		}
		if time.Since(up) >= stableAfter {
			bo.Reset()
			delay = 0
		} else {
			delay = bo.Next()
		}
	}
}
