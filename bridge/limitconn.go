package bridge

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"

	"github.com/fieldgate/fieldgate/internal/ratelog"
)

// maxInboundPacket bounds the remaining length of an MQTT packet the gateway
// reads from a broker. The only sizable packets a broker sends it are
// commands, at most maxCommandSize of payload; the rest is room for the topic
// and headers. Every other packet a broker sends a client is a few bytes.
const maxInboundPacket = 64 << 10

// droppedTopic replaces the topic of a PUBLISH too large to read, so that
// paho acknowledges it (as its QoS requires) through the default handler,
// which drops it: no route matches a topic starting with "$" that the
// gateway never subscribed to.
const droppedTopic = "$fieldgate/dropped"

// MQTT control packet types (the high nibble of a packet's first byte).
const (
	packetPublish = 3
)

// errInboundTooLarge is a packet from the broker larger than any it has
// reason to send: the connection is closed.
var errInboundTooLarge = errors.New("broker sent a packet larger than any it has reason to send")

// opener opens a connection as paho does (TCP, TLS or WebSocket, with
// paho's dialer, TLS config and proxy from the environment), watched for
// going silent (liveconn.go), writes through a coalesceConn, which it hands
// to opened, and reads the broker's packets through a limitConn.
func opener(keepalive time.Duration, logger *slog.Logger, dropped func(topic string, size int), opened func(*coalesceConn)) mqtt.OpenConnectionFunc {
	return func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		c, err := open(uri, o)
		if err != nil {
			return nil, err
		}
		w := coalesce(watchLink(c, keepalive, logger), writeTimeout)
		opened(w)
		return newLimitConn(w, maxInboundPacket, dropped), nil
	}
}

// open dials the broker for the schemes settings produce.
func open(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	switch uri.Scheme {
	case "ws", "wss":
		u := *uri
		u.User = nil // gorilla refuses URLs with credentials; they travel in CONNECT
		var tlsCfg *tls.Config
		if uri.Scheme == "wss" {
			tlsCfg = o.TLSConfig
		}
		return mqtt.NewWebsocket(u.String(), tlsCfg, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	case "tcp", "ssl":
		raw, err := proxy.FromEnvironmentUsing(o.Dialer).Dial("tcp", uri.Host)
		if err != nil || uri.Scheme == "tcp" {
			return raw, err
		}
		cfg := o.TLSConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = uri.Hostname()
		}
		c := tls.Client(raw, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), o.ConnectTimeout)
		defer cancel()
		if err := c.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("unknown scheme %q", uri.Scheme)
}

// limitConn reads the MQTT packets a broker sends through a parser of their
// fixed headers, so a packet larger than limit is never held in memory:
// paho reads each packet whole into a buffer of the size its header claims
// (up to 256 MB). A PUBLISH over the limit is skipped as it streams in;
// paho sees it with droppedTopic and no payload, and acknowledges it as its
// QoS requires, so the broker neither resends it nor holds an in-flight slot
// for it. Any other packet over the limit, which no broker has reason to
// send, closes the connection. Only paho's reading goroutine calls Read.
type limitConn struct {
	net.Conn
	r       *bufio.Reader
	limit   int
	dropped func(topic string, size int) // told of each PUBLISH skipped

	pending []byte  // a fixed header, or a whole replacement packet, to hand out
	header  [5]byte // where pending holds a fixed header: no allocation per packet
	body    int     // bytes of the current packet's body still to pass through
	err     error   // once set, every Read returns it
}

func newLimitConn(c net.Conn, limit int, dropped func(topic string, size int)) *limitConn {
	return &limitConn{Conn: c, r: bufio.NewReader(c), limit: limit, dropped: dropped}
}

func (c *limitConn) Read(p []byte) (int, error) {
	for c.err == nil && len(c.pending) == 0 && c.body == 0 {
		c.err = c.next()
	}
	switch {
	case len(c.pending) > 0:
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	case c.err != nil:
		return 0, c.err
	}
	n, err := c.r.Read(p[:min(len(p), c.body)])
	c.body -= n
	return n, err
}

// next reads the next packet's fixed header: a packet within the limit is
// passed through, a PUBLISH over it is skipped and replaced, anything else
// over it is an error.
func (c *limitConn) next() error {
	first, err := c.r.ReadByte()
	if err != nil {
		return err
	}
	header := append(c.header[:0], first)
	size, shift := 0, 0
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return err
		}
		header = append(header, b)
		size |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		if shift += 7; shift > 21 {
			return errors.New("malformed MQTT packet: remaining length over 4 bytes")
		}
	}
	switch {
	case size <= c.limit:
		c.pending, c.body = header, size
		return nil
	case first>>4 != packetPublish:
		return fmt.Errorf("%w: type %d, %d bytes", errInboundTooLarge, first>>4, size)
	}
	return c.skipPublish(first, size)
}

// skipPublish reads a PUBLISH's topic and packet id, discards its payload
// as it arrives, and queues the replacement packet (none for QoS 0, which
// needs no acknowledgement).
func (c *limitConn) skipPublish(first byte, size int) error {
	var head [2]byte
	if _, err := io.ReadFull(c.r, head[:]); err != nil {
		return err
	}
	topicLen := int(binary.BigEndian.Uint16(head[:]))
	qos := first >> 1 & 3
	idLen := 0
	if qos > 0 {
		idLen = 2
	}
	if 2+topicLen+idLen > size {
		return errors.New("malformed MQTT PUBLISH: topic beyond the packet")
	}
	topic := make([]byte, topicLen+idLen) // at most 64 KiB
	if _, err := io.ReadFull(c.r, topic); err != nil {
		return err
	}
	if _, err := c.r.Discard(size - 2 - topicLen - idLen); err != nil {
		return err
	}
	id := topic[topicLen:]
	c.dropped(string(topic[:topicLen]), size-2-topicLen-idLen)
	if qos == 0 {
		return nil
	}
	body := binary.BigEndian.AppendUint16(nil, uint16(len(droppedTopic)))
	body = append(append(body, droppedTopic...), id...)
	c.pending = append([]byte{first &^ 1, byte(len(body))}, body...) // retain cleared; the body is under 128 bytes
	return nil
}

// inboundDrops is what a connection does with each PUBLISH it skipped as too
// large: count it, log it (rate-limited: a flood of them is one attack, not
// news each time) and, on a connection that carries commands, refuse it.
type inboundDrops struct {
	count  *atomic.Uint64 // the upstream's, across its connections and reloads
	log    *ratelog.Limiter
	refuse func(topic string, size int) // nil: no commands on this connection
}

func (d inboundDrops) dropped(topic string, size int) {
	d.count.Add(1)
	d.log.Log(slog.LevelWarn, "oversize", "message too large to read; dropped unread",
		"topic", topic, "bytes", size, "limit", maxInboundPacket)
	if d.refuse != nil {
		d.refuse(topic, size)
	}
}
