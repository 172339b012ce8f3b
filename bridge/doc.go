// Package bridge publishes buffered readings to the upstream MQTT brokers and
// relays the commands they deliver back to the hardware (SPEC §3, §4).
//
// Each upstream has one goroutine that owns one paho client for as long as
// the upstream's settings stay unchanged, its own cursor in the buffer and
// its own reconnect back-off, so a dead broker never holds up another
// upstream or the adapters: they only ever append to the disk buffer.
//
// An upstream (upstream.go) is made of parts that share only its
// connection: conn (conn.go) dials and holds the paho client; the
// publisher (publisher.go) delivers readings by the rules below, through
// the encoder of the upstream's payload format (one file per format,
// format_*.go); the commandWorker (commandworker.go) serves commands; the
// statusPublisher (status.go) and discovery (homeassistant.go) keep
// adapter statuses and Home Assistant configs on the broker; a reload that
// removes an adapter clears its retained status on every upstream. An
// upstream of format sparkplug is a Sparkplug B edge node: its
// sparkplugSession (sparkplug_session.go) takes the place of statuses and
// result topics, publishes births and deaths, serves NCMD and DCMD, and
// holds the publisher's readings back while they must wait; its DDATA come
// from the buffer through the publisher like any format's messages.
//
// # Delivery
//
// The publisher reads the buffer from the upstream's cursor, publishes in seq
// order and keeps at most maxInFlight messages in flight (maxInFlightQoS2 at
// QoS 2, which brokers limit: Mosquitto drops a client with more than 20
// half-delivered QoS 2 messages by default). Seqs are acknowledged to the
// buffer only up to the first message whose delivery is not yet confirmed: a
// PUBACK (QoS 1), a PUBCOMP (QoS 2) or, for QoS 0, the write to the socket.
//
// paho's own reconnect is off: with it, QoS 0 messages published while
// reconnecting are reported sent without being sent, its back-off has no
// jitter, and its sleeps cannot be cancelled at shutdown. The bridge dials
// itself, with a jittered back-off from 1 s to reconnect_max. It keeps one
// paho client per upstream for the session's sake: with clean_session =
// false, the client's session store (sessionStore, in memory) still holds
// every QoS 1/2 message that was in flight when the link dropped, and paho
// resends those, in their original order, before Connect returns, so a QoS 2
// message the broker has half-received is completed under its own packet id
// instead of being shadowed by a new message reusing that id.
//
// paho's tokens cannot be trusted across that resend: it completes the old
// token, without error, when it replaces it with the resend's. So at a loss
// the publisher sorts its window once, while no resend can have happened:
// messages already confirmed stay confirmed; messages still in flight that
// paho holds in its store (QoS 1/2, persistent session) are from then on
// tracked by watching the store, where paho deletes each one when its
// PUBACK/PUBCOMP arrives; the first message that failed, or that paho does
// not hold (QoS 0, clean session, a refused publish), and everything after
// it is read again from the buffer and republished once the link is back,
// after paho's resends. So each seq reaches the broker in order and, after a
// loss, at most the in-flight window is repeated (rarely a message twice:
// once by paho, once by the publisher). Consumers drop duplicates by seq.
//
// # Commands
//
// A command must never run later than the operator meant it to
// (command_max_age), with or without a ts. A broker keeps a persistent
// session's messages while its client is away and hands them over at the
// next connect: QoS 1 on every broker (AWS IoT Core for an hour by default,
// at most 10 a second; HiveMQ and Mosquitto up to 1,000 per client), QoS 0
// too on EMQX by default. Nothing in MQTT 3.1.1 tells such a message from a
// fresh one, and none of them delivers the backlog in a way a time window or
// a fence after the reconnect could bound (AWS trickles it, Mosquitto and
// EMQX release it through their in-flight windows). So commands never ride
// a persistent session: an upstream whose readings keep one (clean_session
// = false, the default) subscribes to commands on a second connection,
// commandLink (commandlink.go), with client id <client_id>-cmd, a clean
// session and no will. A command published while it is down is dropped by
// the broker, unseen by the gateway. A clean-session upstream carries its
// commands on its one connection. The readings connection drops a command
// subscription left in its session (by an older version, or before commands
// were turned off), and acknowledges and drops whatever no route takes.
//
// What still bounds a command's age: its ts, against command_max_age by the
// gateway's clock (a ts in the future is accepted: the limit is there to
// drop stale replays, and a gateway whose clock lags its operator's would
// otherwise refuse every command); without one, the link itself, which
// keepalive drops when it stalls, and the queue below. A retained command is
// flagged as such when a subscription brings it (every reconnect) and
// refused; one published while the gateway is subscribed reaches it
// unflagged (MQTT 3.1.1 §3.3.1.3), indistinguishable from a plain command,
// and runs once then, fresh, like one.
//
// The paho handler never blocks: it checks the command (retained, size,
// syntax, age) and hands it to a bounded queue served by one worker per
// upstream, which calls the Commander. A full queue refuses the command as
// "busy". Results, and the refusals, go out on the connection that
// delivered the command. Commands are never stored: a command the gateway
// cannot take now is refused, not kept for later; one still queued
// command_max_age after its ts or its arrival, whichever came first, is
// refused. Refusals and failures come in floods when someone misbehaves, so
// they are logged through a rate limit (internal/ratelog).
//
// A broker would deliver a message of any size up to its own limit (256 MB
// in MQTT), and paho reads each packet whole into memory. Every connection
// reads through limitConn (limitconn.go), which parses the packets' fixed
// headers: a PUBLISH over maxInboundPacket is skipped as it arrives, without
// being held, and handed to paho as an empty PUBLISH on a topic no route
// takes, so paho acknowledges it as its QoS requires (a PUBLISH left
// unacknowledged would be resent at every reconnect and hold one of the
// broker's in-flight slots for good); the drop is counted, logged
// (rate-limited) and, on a command topic, refused with a result. Any other
// packet over the limit, which no broker has reason to send, closes the
// link.
//
// # Home Assistant
//
// An upstream with homeassistant = true publishes, retained at QoS 1, one
// discovery config per point to homeassistant/<component>/<gateway
// id>/<adapter>_<point>/config: a binary_sensor or switch for booleans, a
// text for writable strings, a number for other writable points, a sensor
// for the rest, each available while the gateway is online and the
// point's adapter is ok. It does so at each (re)connect and, for the
// points that changed, at each reload, where the config of a point that is
// gone is replaced by an empty retained message, which removes the entity.
// At each connect it first learns which configs the broker retains for
// this gateway id (a brief subscription to homeassistant/+/<gateway
// id>/+/config, see learnRetained), so the entities of points removed
// while the gateway was down are removed too. The configs skip the buffer and go out from their own goroutine, so they
// never hold up readings. The batch format has no topic per point, so it
// gets no configs (and a warning).
package bridge
