package sparkplug

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// State is a host application's STATE message.
type State struct {
	Online bool
	// Timestamp is the host's, in ms since the Unix epoch; 0 in the
	// Sparkplug 2.2 form.
	Timestamp uint64
}

// ParseState decodes a STATE payload: the Sparkplug 3.0 JSON object
// {"online":true,"timestamp":…}, or the plain ONLINE or OFFLINE of
// Sparkplug 2.2 (which hosts published on STATE/<host id>, outside the
// namespace, without a timestamp).
func ParseState(payload []byte) (State, error) {
	switch string(bytes.TrimSpace(payload)) {
	case "ONLINE":
		return State{Online: true}, nil
	case "OFFLINE":
		return State{}, nil
	}
	var s struct {
		Online    *bool   `json:"online"`
		Timestamp *uint64 `json:"timestamp"`
	}
	if err := json.Unmarshal(payload, &s); err != nil {
		return State{}, fmt.Errorf("sparkplug STATE %q: %w", payload, err)
	}
	if s.Online == nil || s.Timestamp == nil {
		return State{}, fmt.Errorf("sparkplug STATE %q: needs both online and timestamp", payload)
	}
	return State{Online: *s.Online, Timestamp: *s.Timestamp}, nil
}

// PrimaryHost follows the STATE of an edge node's primary host application
// on one MQTT server, as the specification asks: a STATE counts only if its
// timestamp is at least that of the last one that counted, so a stale
// message (an old will delivered late, a retained message from before the
// host's latest birth) never turns the host offline. Keep one per MQTT
// server, across reconnections to it: timestamps are per server, and an
// online STATE older than the offline that ended the last session must
// not start a new one. The zero value has seen nothing and says offline.
type PrimaryHost struct {
	last State
	seen bool
}

// Update takes a STATE message and reports whether the primary host is
// online now.
func (h *PrimaryHost) Update(s State) (online bool) {
	if !h.seen || s.Timestamp >= h.last.Timestamp {
		h.last, h.seen = s, true
	}
	return h.last.Online
}
