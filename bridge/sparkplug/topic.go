package sparkplug

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Namespace is the first element of every Sparkplug B topic.
const Namespace = "spBv1.0"

// MessageType is a topic's message_type element.
type MessageType string

// The message types of Sparkplug B 3.0; STATE has a topic of its own form
// (StateTopic).
const (
	NBIRTH MessageType = "NBIRTH"
	NDEATH MessageType = "NDEATH"
	DBIRTH MessageType = "DBIRTH"
	DDEATH MessageType = "DDEATH"
	NDATA  MessageType = "NDATA"
	DDATA  MessageType = "DDATA"
	NCMD   MessageType = "NCMD"
	DCMD   MessageType = "DCMD"
	STATE  MessageType = "STATE"
)

// device reports whether topics of type t name a device.
func (t MessageType) device() bool {
	switch t {
	case DBIRTH, DDEATH, DDATA, DCMD:
		return true
	}
	return false
}

func (t MessageType) known() bool {
	switch t {
	case NBIRTH, NDEATH, DBIRTH, DDEATH, NDATA, DDATA, NCMD, DCMD:
		return true
	}
	return false
}

// ErrBadID says a group, edge node, device or host id cannot be a topic
// element.
var ErrBadID = errors.New("invalid Sparkplug id")

// CheckID checks a group, edge node, device or host id: a non-empty UTF-8
// string without the MQTT topic characters + / and #.
func CheckID(id string) error {
	if id == "" || !utf8.ValidString(id) || strings.ContainsAny(id, "+/#") {
		return fmt.Errorf("%w %q: must be non-empty UTF-8 without + / #", ErrBadID, id)
	}
	return nil
}

// Node names one edge node: its group and its edge node id.
type Node struct {
	Group string
	ID    string
}

// Topic returns the topic of an edge node message: NBIRTH, NDEATH, NDATA
// or NCMD.
func (n Node) Topic(t MessageType) string {
	return Namespace + "/" + n.Group + "/" + string(t) + "/" + n.ID
}

// DeviceTopic returns the topic of a device message: DBIRTH, DDEATH, DDATA
// or DCMD.
func (n Node) DeviceTopic(t MessageType, device string) string {
	return n.Topic(t) + "/" + device
}

// CommandFilters are the topic filters an edge node subscribes to for its
// commands: its NCMD topic and the DCMD topics of all its devices.
func (n Node) CommandFilters() []string {
	return []string{n.Topic(NCMD), n.Topic(DCMD) + "/+"}
}

// StateTopic returns the topic on which the host application hostID
// publishes its STATE (Sparkplug 3.0: spBv1.0/STATE/<host id>).
func StateTopic(hostID string) string {
	return Namespace + "/" + string(STATE) + "/" + hostID
}

// Topic is a parsed Sparkplug B topic.
type Topic struct {
	Type   MessageType
	Node   Node   // empty for STATE
	Device string // DBIRTH, DDEATH, DDATA and DCMD only
	HostID string // STATE only
}

// ParseTopic splits a Sparkplug B topic into its elements; it refuses a
// topic of another namespace, an unknown message type, a device element
// where none belongs (or none where one does) and an empty element.
func ParseTopic(s string) (Topic, error) {
	parts := strings.Split(s, "/")
	bad := func(why string) (Topic, error) {
		return Topic{}, fmt.Errorf("sparkplug topic %q: %s", s, why)
	}
	if parts[0] != Namespace {
		return bad("not in namespace " + Namespace)
	}
	for _, p := range parts[1:] {
		if p == "" {
			return bad("empty element")
		}
	}
	if len(parts) == 3 && parts[1] == string(STATE) {
		return Topic{Type: STATE, HostID: parts[2]}, nil
	}
	if len(parts) < 4 {
		return bad("too few elements")
	}
	t := Topic{Type: MessageType(parts[2]), Node: Node{Group: parts[1], ID: parts[3]}}
	if !t.Type.known() {
		return bad("unknown message type " + parts[2])
	}
	switch {
	case t.Type.device() && len(parts) == 5:
		t.Device = parts[4]
	case t.Type.device():
		return bad(string(t.Type) + " needs a device id")
	case len(parts) != 4:
		return bad(string(t.Type) + " takes no device id")
	}
	return t, nil
}
