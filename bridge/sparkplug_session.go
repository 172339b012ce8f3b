package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fieldgate/fieldgate/bridge/sparkplug"
	"github.com/fieldgate/fieldgate/buffer"
	"github.com/fieldgate/fieldgate/internal/ratelog"
	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/internal/statefile"
)

const (
	// deathWait bounds the wait for the broker to confirm an NDEATH
	// published before a deliberate DISCONNECT.
	deathWait = 2 * time.Second
	// backlogEvery is how often at most an NDATA reports a changed
	// Buffer/Backlog.
	backlogEvery = 10 * time.Second
	// maxStates bounds the STATE messages waiting for the session.
	maxStates = 16
	// maxMarks bounds the device marks kept: a device that flaps through
	// a week-long outage must not fill the memory.
	maxMarks = 1024
)

var errHostOffline = errors.New("the primary host application went offline")

// sparkplugSession makes an upstream of format "sparkplug" a Sparkplug B
// 3.0 edge node (SPEC §5; the protocol's rules are in the doc of package
// sparkplug). The upstream's conn, publisher and command worker do the
// work they do for every format, with these differences:
//
//   - Each CONNECT gets a new bdSeq, kept in the gateway's state directory,
//     and NDEATH(bdSeq) as its will (will); the session is always clean.
//   - Everything the node publishes goes out from the upstream's
//     goroutine, so seq follows the order of the wire: births, deaths,
//     NDATA and republished values from service, which the publisher calls
//     at each turn of its loop, DDATA from the encoder, which the
//     publisher's fill calls after admit. Other goroutines (paho's
//     handler, the command worker, the status board's watcher) leave work
//     in the inbox and signal wake.
//   - DDATA come from the buffer through the publisher exactly as the
//     other formats' messages, and the cursor moves on the same
//     confirmations (SPEC §4), at the upstream's qos. Births and DDEATH
//     go at QoS 0 as Sparkplug requires; so with qos 1 or 2 a broker that
//     still queues QoS 1 messages for a slow subscriber may pass a QoS 0
//     one ahead of them (MQTT orders messages per QoS only), which such a
//     host sees as a seq gap and answers with a rebirth request. qos = 0
//     has none of this.
//
// Commands are in sparkplug_commands.go, the devices' births and deaths
// along the stream in sparkplug_devices.go.
//
// # Births and historical readings
//
// The births go out once connected (with a primary host, once its STATE
// says online), again at a rebirth request and when the points change
// (a reload): NBIRTH, one DBIRTH per adapter with every point's latest
// reading (Bridge.Observe) as its current value, then a DDEATH for each
// adapter that is dead at that place in the stream. The buffer's next seq
// at that moment divides the readings: those below it were taken before
// the births, are older than the values the DBIRTHs carry, and go out with
// is_historical; those from it on are live. So after an outage the
// backlog arrives, in seq order and with the times it was read, as
// history, and the live readings follow it without a gap. A rebirth marks
// what the publisher had not sent yet as historical too: the DBIRTHs
// carry newer values.
//
// # Devices along the stream
//
// An adapter's change between ok and error is marked, by the status
// board's watcher, with the buffer's next seq at that moment, and its
// DDEATH or DBIRTH goes out when the stream reaches that seq: after every
// reading taken before the change, before any taken after it. A host
// thus never gets DDATA of a dead device. Marks stay until the cursor
// passes them, since after a lost link the stream resumes from the
// cursor. A reading of a device that is dead in the stream gives it a
// DBIRTH first: it proves the device answers (a Modbus device with one bad
// register reads its other points while its status says error), and a
// DDATA may only follow a DBIRTH. The adapters' states also go out as the
// node metrics Adapters/<adapter>/State, in NDATA, as they change.
//
// # Commands
//
// NCMD Node Control/Rebirth stops the data at once (admit) and is
// answered with the births, same bdSeq. Other NCMD metrics are logged and
// ignored. Each DCMD metric, by name or alias, takes the command path of
// SPEC §3: the size limit, refusal of retained commands, command_max_age
// against the payload's timestamp, the command worker's queue and the
// Commander's validation and write. A refusal is logged and counted, and
// the point's latest value goes out again in a DDATA, so a host that
// showed the written value sees it revert; a write's read-back comes
// through the buffer like any reading.
//
// # Primary host
//
// With primary_host_id, the node subscribes to that host's STATE and
// publishes births only while it says online, by the timestamp rules of
// sparkplug.PrimaryHost, kept per broker across reconnections. When the
// host goes offline during a session (or is offline on a broker of a
// cluster), the node publishes NDEATH, disconnects and dials the next
// broker of its urls first.
type sparkplugSession struct {
	s       *settings
	logger  *slog.Logger
	quiet   *ratelog.Limiter // the upstream's, for what a host can send in floods
	ctx     context.Context  // the upstream's
	conn    *conn
	buf     Buffer
	views   *atomic.Pointer[view]
	board   *statusBoard
	latest  *latest
	cmds    *commandWorker // nil when the upstream takes no commands
	node    sparkplug.Node
	hostID  string
	version string
	bd      *sparkplug.BdSeq
	enc     *sparkplugEncoder

	wake         chan struct{} // capacity 1: the session has work for service
	boardChanged chan struct{} // capacity 1: the status board changed
	rebirth      atomic.Bool   // asked for and not done yet: data waits
	// cat is the catalog of the last births, which the command handler
	// reads too.
	cat atomic.Pointer[sparkplug.Catalog]

	mu      sync.Mutex // guards inbox and present
	inbox   sessionInbox
	present map[string]string // each adapter's status: "" ok, else its fault

	// The rest belongs to the upstream's goroutine.
	willBdSeq uint8 // in the will of the last CONNECT
	bdSeq     uint8 // of the connection
	gen       uint64
	live      bool // the births of this connection are out
	hostUp    bool // the primary host says online on this connection
	hosts     map[string]*sparkplug.PrimaryHost
	catView   *view // the view the catalog stands for
	defs      catalogDefs
	seq       sparkplug.Seq
	histBelow uint64          // readings below this seq are historical
	born      map[string]bool // by device: DBIRTH out since its last DDEATH
	marks     []deviceMark    // by seq
	applied   int             // marks before this one are behind the stream
	baseDead  map[string]bool // the states before the first mark
	backlog   uint64          // last reported
	backlogAt time.Time
	dropped   map[pointKey]bool // points whose readings were left out, logged once
}

// sessionInbox is the work other goroutines hand the session.
type sessionInbox struct {
	states  []hostState
	marks   []deviceMark
	changed map[string]bool   // adapters whose state metric changed
	reprint map[pointKey]bool // points whose command was refused
}

// hostState is a STATE message and the connection it came on.
type hostState struct {
	gen uint64
	sparkplug.State
}

// catalogDefs are what a catalog is built from: its node metrics and its
// devices, in birth order.
type catalogDefs struct {
	node    []sparkplug.MetricDef
	devices []sparkplug.Device
}

func newSparkplugSession(u *upstream) *sparkplugSession {
	sp := u.s.sparkplug
	s := &sparkplugSession{
		s: u.s, logger: u.logger, quiet: u.quiet, ctx: u.ctx, conn: u.conn, buf: u.b.buf, views: &u.b.view, board: u.b.status,
		latest: u.b.latest, cmds: u.commands, node: sparkplug.Node{Group: sp.GroupID, ID: sp.EdgeNodeID},
		hostID: sp.PrimaryHostID, version: u.b.node.version,
		wake: make(chan struct{}, 1), boardChanged: make(chan struct{}, 1), present: map[string]string{},
		hosts: map[string]*sparkplug.PrimaryHost{}, born: map[string]bool{}, baseDead: map[string]bool{},
		dropped: map[pointKey]bool{},
	}
	s.enc = &sparkplugEncoder{s: s, max: u.s.batchMax}
	s.bd = s.openBdSeq(u.b.state)
	u.conn.renew = s.will
	s.board.watch(s.boardChanged)
	s.recordStates()
	return s
}

// openBdSeq opens the upstream's bdSeq file; an unusable one is set aside
// and the count starts at 0 again.
func (s *sparkplugSession) openBdSeq(dir *statefile.Dir) *sparkplug.BdSeq {
	if dir == nil {
		s.logger.Warn("sparkplug: no state directory: bdSeq is kept in memory and starts at 0 again at the next start")
		bd, _ := sparkplug.OpenBdSeq(nil)
		return bd
	}
	f := dir.File("sparkplug-"+s.s.name+".bdseq", sparkplug.BdSeqFormat)
	bd, err := sparkplug.OpenBdSeq(f)
	if errors.Is(err, statefile.ErrCorrupt) {
		kept, aerr := f.SetAside()
		s.logger.Error("sparkplug: bdSeq file unusable; set aside, bdSeq starts at 0 again", "err", err, "kept", kept, "set_aside_err", aerr)
		bd, err = sparkplug.OpenBdSeq(f)
	}
	if err != nil {
		s.logger.Error("sparkplug: cannot read the bdSeq file; bdSeq is kept in memory", "err", err)
		bd, _ = sparkplug.OpenBdSeq(nil)
	}
	return bd
}

// start starts the session's goroutines, which end with the upstream.
func (s *sparkplugSession) start(wg *sync.WaitGroup) {
	wg.Go(s.watchStates)
	if s.cmds != nil {
		wg.Go(s.takeResults)
	}
}

// close releases the bdSeq file once the upstream has stopped.
func (s *sparkplugSession) close() {
	if err := s.bd.Close(); err != nil {
		s.logger.Warn("sparkplug: closing the bdSeq file", "err", err)
	}
}

// resync has the session see a reloaded view: new points call for births.
func (s *sparkplugSession) resync() {
	if s != nil {
		s.signal()
	}
}

func (s *sparkplugSession) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// will takes the next bdSeq for a CONNECT and returns its will, NDEATH.
func (s *sparkplugSession) will() (willMsg, error) {
	n, err := s.bd.Next()
	if err != nil {
		return willMsg{}, err
	}
	s.willBdSeq = n
	return willMsg{topic: s.node.Topic(sparkplug.NDEATH), payload: sparkplug.NDeath(n, time.Now())}, nil
}

// connected starts a session on a new link: it subscribes, at QoS 1, to
// the node's commands and the primary host's STATE, and waits (bounded)
// for the broker's answer, so that a host that sees the births can be
// heard. service publishes the births.
func (s *sparkplugSession) connected() {
	s.gen++
	s.bdSeq, s.live, s.hostUp = s.willBdSeq, false, false
	filters := map[string]byte{s.node.Topic(sparkplug.NCMD): 1}
	if s.cmds != nil {
		filters[s.node.Topic(sparkplug.DCMD)+"/+"] = 1
	}
	if s.hostID != "" {
		filters[sparkplug.StateTopic(s.hostID)] = 1
	}
	refused, err := awaitSuback(s.ctx, s.conn.client.SubscribeMultiple(filters, s.handler(s.gen)), subackTimeout)
	switch {
	case s.ctx.Err() != nil:
	case errors.Is(err, errNoSuback):
		s.logger.Warn("sparkplug: no answer to the subscriptions")
	case err != nil:
		s.logger.Warn("sparkplug: subscription failed", "err", err)
	}
	for _, f := range refused {
		s.logger.Warn("sparkplug: the broker refused a subscription", "topic", f)
	}
	s.logger.Info("sparkplug: session started", "group", s.node.Group, "edge_node", s.node.ID, "bdSeq", s.bdSeq)
	s.signal()
}

// handler is paho's handler for the session's subscriptions on the
// connection gen. It must not block.
func (s *sparkplugSession) handler(gen uint64) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) {
		t, err := sparkplug.ParseTopic(m.Topic())
		switch {
		case err != nil:
		case t.Type == sparkplug.STATE:
			s.onState(gen, m.Payload())
		case t.Node == s.node && (t.Type == sparkplug.NCMD || t.Type == sparkplug.DCMD && s.cmds != nil):
			s.onCommand(t, m)
		}
	}
}

func (s *sparkplugSession) onState(gen uint64, payload []byte) {
	st, err := sparkplug.ParseState(payload)
	if err != nil {
		s.quiet.Log(slog.LevelWarn, "sparkplug: STATE ignored", "sparkplug: STATE ignored", "err", err)
		return
	}
	s.mu.Lock()
	if len(s.inbox.states) == maxStates { // only the newest matter: they carry timestamps
		s.inbox.states = s.inbox.states[1:]
	}
	s.inbox.states = append(s.inbox.states, hostState{gen, st})
	s.mu.Unlock()
	s.signal()
}

func (s *sparkplugSession) takeInbox() sessionInbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.inbox
	s.inbox = sessionInbox{}
	return in
}

// service does the session's work between the publisher's turns; next is
// where the publisher's stream stands: every reading below it is out. An
// error ends the connection.
func (s *sparkplugSession) service(next uint64) error {
	in := s.takeInbox()
	s.addMarks(in.marks)
	if err := s.followHost(in.states); err != nil {
		return err
	}
	if !s.live || s.rebirth.Load() || s.viewChanged() {
		if s.hostID != "" && !s.hostUp {
			return nil // no births, so no data, until the primary host is online
		}
		if err := s.births(next); err != nil {
			return err
		}
	} else {
		s.stateData(in.changed)
		s.reprint(in.reprint)
	}
	s.applyMarks(next)
	s.reportBacklog()
	s.pruneMarks()
	return nil
}

// followHost takes the primary host's STATE messages.
func (s *sparkplugSession) followHost(states []hostState) error {
	for _, st := range states {
		if st.gen != s.gen {
			continue // it came on an earlier connection, maybe to another broker
		}
		broker := s.conn.brokerName()
		h := s.hosts[broker]
		if h == nil {
			h = new(sparkplug.PrimaryHost)
			s.hosts[broker] = h
		}
		was := s.hostUp
		s.hostUp = h.Update(st.State)
		s.logger.Debug("sparkplug: STATE", "online", st.Online, "timestamp", st.Timestamp, "host_online", s.hostUp)
		switch {
		case s.hostUp && !was:
			s.logger.Info("sparkplug: the primary host is online", "host", s.hostID, "timestamp", st.Timestamp)
		case s.hostUp || st.Online: // still online, or a stale online ignored
		case s.live || len(s.s.brokers) > 1:
			s.logger.Warn("sparkplug: the primary host is offline: ending the session to try the next broker",
				"host", s.hostID, "timestamp", st.Timestamp, "broker", broker)
			s.conn.moveOn()
			return errHostOffline
		default:
			s.logger.Info("sparkplug: waiting for the primary host to come online", "host", s.hostID)
		}
	}
	return nil
}

// catalog returns the catalog of the current view, built anew when the
// view changed.
func (s *sparkplugSession) catalog() (*sparkplug.Catalog, error) {
	v := s.views.Load()
	if cat := s.cat.Load(); cat != nil && v == s.catView {
		return cat, nil
	}
	defs, problems := defsOf(v)
	for _, p := range problems {
		s.logger.Warn("sparkplug: " + p)
	}
	cat, err := sparkplug.NewCatalog(defs.node, defs.devices)
	if err != nil {
		return nil, fmt.Errorf("sparkplug: %w", err)
	}
	s.catView, s.defs = v, defs
	s.cat.Store(cat)
	return cat, nil
}

// viewChanged reports whether the points changed since the births, which
// must then be made again; a new view with the same points (a reload that
// changed something else) is taken as it is.
func (s *sparkplugSession) viewChanged() bool {
	v := s.views.Load()
	if v == s.catView {
		return false
	}
	if defs, _ := defsOf(v); !reflect.DeepEqual(defs, s.defs) {
		return true
	}
	s.catView = v
	return false
}

// defsOf declares the gateway's own metrics and each adapter's points, in
// the config's order, with the datatype of each point's type; it lists
// the points it leaves out, and names that differ only in case, which
// Sparkplug asks edge nodes to avoid.
func defsOf(v *view) (catalogDefs, []string) {
	d := catalogDefs{node: sparkplug.GatewayMetrics(v.adapters)}
	var problems []string
	index := map[string]int{}
	lower := map[pointKey]string{}
	for _, p := range v.points {
		dt, err := sparkplug.PointDataType(p.Type, p.Scale != 1 || p.Offset != 0)
		if err != nil {
			problems = append(problems, fmt.Sprintf("point %s/%s left out: %v", p.Adapter, p.Name, err))
			continue
		}
		k := pointKey{p.Adapter, strings.ToLower(p.Name)}
		if other, dup := lower[k]; dup {
			problems = append(problems, fmt.Sprintf("points %s/%s and %s differ only in case: some hosts take them for one", p.Adapter, p.Name, other))
		}
		lower[k] = p.Name
		i, ok := index[p.Adapter]
		if !ok {
			i = len(d.devices)
			index[p.Adapter] = i
			d.devices = append(d.devices, sparkplug.Device{ID: p.Adapter})
		}
		d.devices[i].Metrics = append(d.devices[i].Metrics, sparkplug.MetricDef{Name: p.Name, Type: dt, Unit: p.Unit})
	}
	return d, problems
}

// births publishes NBIRTH and every DBIRTH, then a DDEATH for each device
// dead at pos, the stream's place.
func (s *sparkplugSession) births(pos uint64) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	now := time.Now()
	st := s.buf.Stats()
	s.histBelow, s.backlog, s.backlogAt = st.Next, backlogOf(st, s.s.name), now
	node := map[string]sparkplug.Sample{sparkplug.MetricBacklog: {Value: reading.Uint(s.backlog), Time: now}}
	if s.version != "" {
		node[sparkplug.MetricVersion] = sparkplug.Sample{Value: reading.String(s.version), Time: now}
	}
	for _, sm := range s.stateSamples(nil, now) {
		node[sm.Name] = sm
	}
	b, err := cat.NBirth(s.seq.Birth(), now, s.bdSeq, node)
	if err != nil {
		return err
	}
	s.conn.publish(s.node.Topic(sparkplug.NBIRTH), 0, false, b)
	clear(s.born)
	devices := cat.Devices()
	for _, d := range devices {
		s.deviceBirth(cat, d, now)
	}
	dead := s.deadAt(pos)
	for _, d := range devices {
		if dead[d] {
			s.deviceDeath(d, now)
		}
	}
	s.applied = sort.Search(len(s.marks), func(i int) bool { return s.marks[i].seq > pos })
	s.rebirth.Store(false)
	s.live = true
	s.logger.Info("sparkplug: births published", "bdSeq", s.bdSeq, "devices", len(devices),
		"historical_below", st.Next, "stream_at", pos)
	return nil
}

// admit reports whether the publisher may go on with the reading e, and
// first publishes what must precede it: the DDEATHs and DBIRTHs marked up
// to its seq, and the DBIRTH of its device if that is dead in the stream.
// It holds the readings back until service has published the births.
func (s *sparkplugSession) admit(e buffer.Entry) bool {
	switch {
	case !s.live || s.rebirth.Load():
		return false
	case s.views.Load() != s.catView:
		s.signal() // for service to see whether the points changed
		return false
	}
	s.applyMarks(e.Seq)
	if born, known := s.born[e.Adapter]; known && !born {
		s.deviceBirth(s.cat.Load(), e.Adapter, time.Now())
	}
	return true
}

// drop logs, once per point, a reading that cannot be published.
func (s *sparkplugSession) drop(r buffer.Entry, why string) {
	k := pointKey{r.Adapter, r.Point}
	if !s.dropped[k] {
		s.dropped[k] = true
		s.logger.Warn("sparkplug: readings of a point left out", "adapter", r.Adapter, "point", r.Point, "why", why, "seq", r.Seq)
	}
}

// stateSamples returns the state metrics of the adapters in which (all
// when nil): "ok", or "error: " and the fault.
func (s *sparkplugSession) stateSamples(which map[string]bool, now time.Time) []sparkplug.Sample {
	cat := s.cat.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sparkplug.Sample
	for a, f := range s.present {
		name := sparkplug.AdapterStateMetric(a)
		if _, ok := cat.Lookup("", name); !ok || which != nil && !which[a] {
			continue
		}
		v := "ok"
		if f != "" {
			v = "error: " + f
		}
		out = append(out, sparkplug.Sample{Name: name, Value: reading.String(v), Time: now})
	}
	return out
}

// stateData publishes the changed adapter states in an NDATA.
func (s *sparkplugSession) stateData(changed map[string]bool) {
	if len(changed) > 0 {
		s.nodeData(s.stateSamples(changed, time.Now()))
	}
}

// reportBacklog publishes Buffer/Backlog when it changed, at most every
// backlogEvery.
func (s *sparkplugSession) reportBacklog() {
	now := time.Now()
	if now.Sub(s.backlogAt) < backlogEvery {
		return
	}
	s.backlogAt = now
	if n := backlogOf(s.buf.Stats(), s.s.name); n != s.backlog {
		s.backlog = n
		s.nodeData([]sparkplug.Sample{{Name: sparkplug.MetricBacklog, Value: reading.Uint(n), Time: now}})
	}
}

// backlogOf is how many readings upstream has still to deliver.
func backlogOf(st buffer.Stats, upstream string) uint64 {
	return st.Next - max(st.Cursors[upstream], st.First)
}

func (s *sparkplugSession) nodeData(samples []sparkplug.Sample) {
	if len(samples) == 0 {
		return
	}
	b, err := s.cat.Load().NData(s.seq.Next(), time.Now(), samples)
	if err != nil { // the samples come from the catalog
		s.logger.Error("sparkplug: NDATA not built", "err", err)
		return
	}
	s.conn.publish(s.node.Topic(sparkplug.NDATA), s.s.qos, false, b)
}
