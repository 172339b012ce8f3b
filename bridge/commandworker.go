package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/internal/ratelog"
	"github.com/fieldgate/fieldgate/internal/reading"
)

const (
	subackTimeout  = 10 * time.Second
	resultTimeout  = 5 * time.Second
	commandTimeout = 10 * time.Second
	commandQueue   = 16
)

// commandWorker serves one upstream's commands (see the package doc): paho's
// handler checks each and queues it, one goroutine carries them out in
// arrival order, and another publishes their results.
type commandWorker struct {
	s      *settings
	logger *slog.Logger
	quiet  *ratelog.Limiter // the upstream's, for refusals and failures, which come in floods
	ctx    context.Context  // the upstream's: ends at its stop
	conn   *conn
	cmd    Commander
	views  *atomic.Pointer[view] // the live config, for command_max_age
	wg     *sync.WaitGroup       // the upstream's, for the SUBACK watchers

	jobs    chan job
	results chan result
	refused atomic.Uint64 // commands refused or failed
}

type job struct {
	adapter, point string
	cmd            Command
	expires        time.Time // command_max_age after its ts, or after its arrival if sooner
}

// newCommandWorker serves u's commands delivered on c: u's own connection
// or its command link.
func newCommandWorker(u *upstream, c *conn) *commandWorker {
	return &commandWorker{s: u.s, logger: u.logger, quiet: u.quiet, ctx: u.ctx, conn: c, cmd: u.b.cmd, views: &u.b.view, wg: &u.wg,
		jobs: make(chan job, commandQueue), results: make(chan result, 2*commandQueue)}
}

// subscribe renews the command subscription on a new link of its
// connection; a watcher logs how the broker answered.
func (w *commandWorker) subscribe() {
	tok := w.conn.client.Subscribe(w.s.commandFilter(), 1, nil)
	w.wg.Go(func() { w.checkSuback(tok) })
}

func (w *commandWorker) checkSuback(tok mqtt.Token) {
	refused, err := awaitSuback(w.ctx, tok, subackTimeout)
	switch {
	case w.ctx.Err() != nil:
	case errors.Is(err, errNoSuback):
		w.logger.Warn("no answer to the command subscription", "topic", w.s.commandFilter())
	case err != nil:
		w.logger.Warn("command subscription failed", "topic", w.s.commandFilter(), "err", err)
	case len(refused) > 0:
		w.logger.Warn("the broker refused the command subscription", "topic", w.s.commandFilter())
	default:
		w.logger.Debug("subscribed to commands", "topic", w.s.commandFilter())
	}
}

// errNoSuback is a subscription the broker did not answer in time.
var errNoSuback = errors.New("no answer to the subscription")

// awaitSuback waits up to timeout for the broker's answer to a
// subscription and returns the filters it refused; errNoSuback when no
// answer came, ctx's error once ctx is done.
func awaitSuback(ctx context.Context, tok mqtt.Token, timeout time.Duration) (refused []string, err error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-t.C:
		return nil, errNoSuback
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	for f, q := range tok.(*mqtt.SubscribeToken).Result() {
		if q > 2 {
			refused = append(refused, f)
		}
	}
	return refused, nil
}

// onCommand is paho's handler for command topics. It must not block: it
// checks the command and queues it, refusing it when the queue is full.
func (w *commandWorker) onCommand(_ mqtt.Client, m mqtt.Message) {
	adapter, point, ok := w.s.commandTarget(m.Topic())
	if !ok {
		return
	}
	now, maxAge := time.Now(), w.views.Load().maxAge
	c, err := checkCommand(m.Payload(), m.Retained(), now, maxAge)
	if err == nil {
		if err = w.enqueue(adapter, point, c, now, maxAge); err == nil {
			return
		}
	}
	w.quiet.Log(slog.LevelWarn, "refused: "+refusal(err), "command refused", "adapter", adapter, "point", point, "id", c.ID, "err", err)
	w.answer(result{adapter: adapter, point: point, id: c.ID, err: err})
}

// enqueue queues a checked command without blocking, or refuses it as
// ErrBusy. It expires maxAge after its ts, or after now if sooner.
func (w *commandWorker) enqueue(adapter, point string, c Command, now time.Time, maxAge time.Duration) error {
	issued := now // a ts ahead of the gateway's clock must not extend the wait
	if !c.TS.IsZero() && c.TS.Before(now) {
		issued = c.TS
	}
	select {
	case w.jobs <- job{adapter, point, c, issued.Add(maxAge)}:
		return nil
	default:
		return ErrBusy
	}
}

// refuseTooLarge answers a command its connection dropped unread for its
// size (limitconn.go); other topics get no answer.
func (w *commandWorker) refuseTooLarge(topic string, size int) {
	if adapter, point, ok := w.s.commandTarget(topic); ok {
		w.answer(result{adapter: adapter, point: point, err: tooLarge(size)})
	}
}

// refusals are the reasons a command is refused or fails, each a kind of
// warning for the rate limit.
var refusals = append([]error{ErrMalformed, ErrTooLarge, ErrRetained, ErrExpired, ErrBusy}, adapters.Refusals...)

// refusal names err's reason among refusals, "other" if none.
func refusal(err error) string {
	for _, r := range refusals {
		if errors.Is(err, r) {
			return r.Error()
		}
	}
	return "other"
}

// answer queues a result without blocking.
func (w *commandWorker) answer(res result) {
	select {
	case w.results <- res:
	default:
		w.quiet.Log(slog.LevelWarn, "result dropped", "command result dropped: too many waiting", "adapter", res.adapter, "point", res.point, "id", res.id)
	}
}

// execute carries out queued commands one at a time, in arrival order. A
// command that waited in the queue past command_max_age is refused, not
// written late.
func (w *commandWorker) execute() {
	for {
		select {
		case <-w.ctx.Done():
			return
		case j := <-w.jobs:
			if w.ctx.Err() != nil {
				return // select picks at random: a stop wins over a queued command
			}
			var v reading.Value
			var err error
			if now := time.Now(); now.Before(j.expires) {
				// The command's age bounds the wait for the device too: one
				// still queued for a busy bus when it expires never reaches it.
				deadline := now.Add(commandTimeout)
				if j.expires.Before(deadline) {
					deadline = j.expires
				}
				ctx, cancel := context.WithDeadline(w.ctx, deadline)
				v, err = w.cmd.Command(ctx, j.adapter, j.point, j.cmd.Value)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) && !time.Now().Before(j.expires) {
					err = fmt.Errorf("%w: command_max_age passed while it waited for the device: %w", ErrExpired, err)
				}
			} else {
				err = fmt.Errorf("%w: command_max_age passed while it waited its turn", ErrExpired)
			}
			if err != nil {
				w.quiet.Log(slog.LevelWarn, "failed: "+refusal(err), "command failed", "adapter", j.adapter, "point", j.point, "id", j.cmd.ID, "err", err)
			} else {
				w.logger.Info("command", "adapter", j.adapter, "point", j.point, "id", j.cmd.ID, "value", v)
			}
			select {
			case w.results <- result{adapter: j.adapter, point: j.point, id: j.cmd.ID, written: v, err: err}:
			case <-w.ctx.Done():
				return
			}
		}
	}
}

// publishResults sends command results, each awaited for a bounded time.
func (w *commandWorker) publishResults() {
	for {
		select {
		case <-w.ctx.Done():
			return
		case res := <-w.results:
			if res.err != nil {
				w.refused.Add(1)
			}
			tok := w.conn.publish(w.s.resultTopic(res.adapter, res.point), 1, false, res.payload())
			t := time.NewTimer(resultTimeout)
			select {
			case <-tok.Done():
				if err := tok.Error(); err != nil {
					w.quiet.Log(slog.LevelWarn, "result not delivered", "command result not delivered", "adapter", res.adapter, "point", res.point, "id", res.id, "err", err)
				}
			case <-t.C:
				w.quiet.Log(slog.LevelWarn, "result not confirmed", "command result not confirmed", "adapter", res.adapter, "point", res.point, "id", res.id)
			case <-w.ctx.Done():
			}
			t.Stop()
		}
	}
}
