package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/fieldgate/fieldgate/test/peers"
)

// publishPacket encodes a PUBLISH as a broker sends it.
func publishPacket(t testing.TB, topic string, qos byte, retain bool, id uint16, payload []byte) []byte {
	t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Qos, p.Retain, p.MessageID, p.Payload = topic, qos, retain, id, payload
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func ackPacket(t testing.TB, typ byte, id uint16) []byte {
	t.Helper()
	var b bytes.Buffer
	p := packets.NewControlPacket(typ)
	switch p := p.(type) {
	case *packets.PubackPacket:
		p.MessageID = id
	case *packets.SubackPacket:
		p.MessageID, p.ReturnCodes = id, []byte{1}
	}
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// through feeds stream to a limitConn and reads it as paho does, packet by
// packet, until the stream ends; it returns the packets read, the drops
// reported and the error that ended the reading.
func through(t testing.TB, stream []byte, limit int) (got []packets.ControlPacket, drops []string, err error) {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		_, _ = server.Write(stream)
		_ = server.Close()
	}()
	c := newLimitConn(client, limit, func(topic string, size int) { drops = append(drops, fmt.Sprintf("%s %d", topic, size)) })
	defer c.Close()
	for {
		p, err := packets.ReadPacket(c)
		if err != nil {
			return got, drops, err
		}
		got = append(got, p)
	}
}

// TestLimitConn sends packets within and beyond the limit: the small ones
// pass unchanged, a large PUBLISH comes out as an empty one on droppedTopic
// with its flags and packet id (QoS 0: not at all), other large packets end
// the connection.
func TestLimitConn(t *testing.T) {
	const limit = 1000
	big := bytes.Repeat([]byte("x"), 5000)
	var stream []byte
	add := func(b []byte) { stream = append(stream, b...) }
	add(ackPacket(t, packets.Suback, 1))
	add(publishPacket(t, "fg/gw/a/p/set", 1, false, 7, []byte("21.5")))
	add(publishPacket(t, "fg/gw/a/p/set", 1, true, 8, big))
	add(publishPacket(t, "fg/gw/a/q/set", 0, false, 0, big))
	add(publishPacket(t, "fg/gw/a/r/set", 2, false, 9, big))
	add(publishPacket(t, "fg/gw/a/p/set", 0, false, 0, bytes.Repeat([]byte("y"), limit-len("fg/gw/a/p/set")-2))) // exactly the limit
	add(ackPacket(t, packets.Puback, 3))

	got, drops, err := through(t, stream, limit)
	if !errors.Is(err, io.EOF) {
		t.Errorf("stream ended with %v, want EOF", err)
	}
	want := []string{
		"suback id 1",
		"publish fg/gw/a/p/set q1 r0 id 7 payload 4",
		"publish $fieldgate/dropped q1 r0 id 8 payload 0",
		"publish $fieldgate/dropped q2 r0 id 9 payload 0",
		fmt.Sprintf("publish fg/gw/a/p/set q0 r0 id 0 payload %d", limit-len("fg/gw/a/p/set")-2),
		"puback id 3",
	}
	var gotS []string
	for _, p := range got {
		gotS = append(gotS, describePacket(p))
	}
	if strings.Join(gotS, "\n") != strings.Join(want, "\n") {
		t.Errorf("packets:\n%s\nwant:\n%s", strings.Join(gotS, "\n"), strings.Join(want, "\n"))
	}
	wantDrops := "fg/gw/a/p/set 5000\nfg/gw/a/q/set 5000\nfg/gw/a/r/set 5000"
	if strings.Join(drops, "\n") != wantDrops {
		t.Errorf("drops:\n%s\nwant:\n%s", strings.Join(drops, "\n"), wantDrops)
	}

	for _, bad := range []struct {
		name   string
		stream []byte
	}{
		{"large suback", append([]byte{0x90, 0xe9, 0x07}, make([]byte, 1001)...)},
		{"length over 4 bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"topic beyond the packet", append([]byte{0x30, 0xe9, 0x07, 0xff, 0xff}, make([]byte, 999)...)},
	} {
		if _, _, err := through(t, bad.stream, limit); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: stream ended with %v, want an error", bad.name, err)
		}
	}
}

func describePacket(p packets.ControlPacket) string {
	switch p := p.(type) {
	case *packets.PublishPacket:
		r := 0
		if p.Retain {
			r = 1
		}
		return fmt.Sprintf("publish %s q%d r%d id %d payload %d", p.TopicName, p.Qos, r, p.MessageID, len(p.Payload))
	case *packets.SubackPacket:
		return fmt.Sprintf("suback id %d", p.MessageID)
	case *packets.PubackPacket:
		return fmt.Sprintf("puback id %d", p.MessageID)
	}
	return p.String()
}

// TestOversizeCommand publishes a 1 MB command through Mosquitto: it is
// refused without being read, counted, logged once however often it comes,
// and the connection carries on.
func TestOversizeCommand(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoOptions{})
	obs := peers.Observe(t, m.URL(), "fg/gw/+/+/set/result")
	cmd := &commander{}
	g := startGateway(t, testConfig(t, upstreamCfg("cloud", m.URL())), cmd)
	g.logs.Await(t, wait, "subscribed to commands", "upstream=cloud")

	big := `"` + strings.Repeat("x", 1<<20) + `"`
	for range 3 {
		obs.Publish(t, "fg/gw/boiler/temp/set", 1, false, big)
	}
	obs.Publish(t, "fg/gw/boiler/temp/set", 1, false, `{"value":1,"id":"after"}`)
	obs.AwaitMessage(t, wait, "fg/gw/boiler/temp/set/result", func(p []byte) bool { return bytes.Contains(p, []byte(`"id":"after"`)) })
	rs := obs.Topic("fg/gw/boiler/temp/set/result")
	if len(rs) != 4 {
		t.Fatalf("%d results, want 4: %v", len(rs), rs)
	}
	for _, r := range rs[:3] {
		if want := fmt.Sprintf(`{"id":"","ok":false,"error":"command larger than 4 KiB (%d bytes)"}`, len(big)); string(r.Payload) != want {
			t.Errorf("result %s, want %s", r.Payload, want)
		}
	}
	if got := g.b.Upstreams()[0].Dropped; got != 3 {
		t.Errorf("dropped count %d, want 3", got)
	}
	if n := strings.Count(g.logs.String(), "message too large to read"); n != 1 {
		t.Errorf("%d log lines about it, want 1 (the rest counted for the next)", n)
	}
	if calls := cmd.called(); len(calls) != 1 {
		t.Errorf("Commander calls %v, want only the last command's", calls)
	}
}

// readerConn is a connection whose reads come from r.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// packetSizes splits an MQTT byte stream into packets by their fixed
// headers and returns each one's remaining length, and whether the stream
// ends on a packet boundary with well-formed headers.
func packetSizes(b []byte) (sizes []int, whole bool) {
	for len(b) > 0 {
		size, i := 0, 1
		for shift := 0; ; shift += 7 {
			if i >= len(b) || shift > 21 {
				return sizes, false
			}
			size |= int(b[i]&0x7f) << shift
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
		if i+size > len(b) {
			return sizes, false
		}
		sizes = append(sizes, size)
		b = b[i+size:]
	}
	return sizes, true
}

// FuzzLimitConn feeds arbitrary byte streams from a "broker" through the
// limit: a stream of packets within it passes unchanged, and whatever comes
// out holds no packet over it.
func FuzzLimitConn(f *testing.F) {
	const limit = 64
	f.Add(publishPacket(f, "a/b/set", 1, false, 1, []byte("1")))
	f.Add(publishPacket(f, "a/b/set", 1, false, 1, bytes.Repeat([]byte("x"), 100)))
	f.Add(publishPacket(f, "a/b/set", 2, true, 9, bytes.Repeat([]byte("x"), 1000)))
	f.Add(publishPacket(f, "a/b/set", 0, false, 0, bytes.Repeat([]byte("x"), 100)))
	f.Add(append(ackPacket(f, packets.Puback, 3), ackPacket(f, packets.Suback, 4)...))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0x32, 0x7f, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := newLimitConn(readerConn{r: bytes.NewReader(in)}, limit, func(string, int) {})
		out, err := io.ReadAll(c)
		if sizes, whole := packetSizes(in); whole && !slices.ContainsFunc(sizes, func(n int) bool { return n > limit }) {
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("packets within the limit % x came out as % x, %v", in, out, err)
			}
		}
		sizes, _ := packetSizes(out)
		if slices.ContainsFunc(sizes, func(n int) bool { return n > limit }) {
			t.Fatalf("% x came out with a packet over the limit: % x", in, out)
		}
	})
}
