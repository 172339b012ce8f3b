package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// Commander carries out a command on the hardware: the gateway routes it to
// the adapter's Writer and buffers the read-back reading. Refusals wrap
// adapters.ErrNoPoint, ErrNotWritable, ErrBadValue or ErrTooSoon; the result
// published upstream carries err.Error().
type Commander interface {
	Command(ctx context.Context, adapter, point string, v reading.Value) (written reading.Value, err error)
}

// Reasons the bridge refuses a command before the Commander sees it.
var (
	ErrMalformed = errors.New("malformed command")
	ErrTooLarge  = errors.New("command larger than 4 KiB")
	ErrRetained  = errors.New("retained command refused (a retained command would be replayed at every reconnect)")
	ErrExpired   = errors.New("command expired")
	ErrBusy      = errors.New("busy: too many commands waiting")
)

// maxCommandSize is the largest command payload accepted (SPEC §3).
const maxCommandSize = 4 << 10

// Command is a parsed command payload.
type Command struct {
	Value reading.Value
	ID    string    // echoed in the result; empty when the command had none
	TS    time.Time // when the command was issued; zero when it did not say
}

// ParseCommand reads a command payload: a JSON object {"value": v, "id":
// "…", "ts": "RFC 3339"} (only value required; other keys are ignored), a
// bare JSON number, boolean or string, or plain text. An integer literal
// becomes Int (or Uint when only that fits), any other number Float; plain
// text becomes String, which the adapter coerces (on/off, 1/0, numbers).
// Payloads that start like a JSON object or array must be valid JSON.
func ParseCommand(payload []byte) (Command, error) {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 {
		return Command{}, fmt.Errorf("%w: empty payload", ErrMalformed)
	}
	switch p[0] {
	case '{':
		return parseObject(p)
	case '[':
		return Command{}, fmt.Errorf("%w: a JSON array is not a command", ErrMalformed)
	}
	if json.Valid(p) {
		v, err := jsonValue(p)
		return Command{Value: v}, err
	}
	if !utf8.Valid(p) {
		return Command{}, fmt.Errorf("%w: payload is not UTF-8 text", ErrMalformed)
	}
	return Command{Value: reading.String(string(p))}, nil
}

func parseObject(p []byte) (Command, error) {
	var obj struct {
		Value json.RawMessage `json:"value"`
		ID    json.RawMessage `json:"id"`
		TS    json.RawMessage `json:"ts"`
	}
	if err := json.Unmarshal(p, &obj); err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var c Command
	// The id comes first so that even a refusal can echo it.
	switch {
	case len(obj.ID) == 0 || string(obj.ID) == "null":
	case obj.ID[0] == '"':
		_ = json.Unmarshal(obj.ID, &c.ID) // a valid JSON string always decodes
	case obj.ID[0] == '-' || obj.ID[0] >= '0' && obj.ID[0] <= '9':
		c.ID = string(obj.ID)
	default:
		return c, fmt.Errorf("%w: \"id\" must be a string", ErrMalformed)
	}
	if len(obj.TS) > 0 && string(obj.TS) != "null" {
		var s string
		if err := json.Unmarshal(obj.TS, &s); err != nil {
			return c, fmt.Errorf("%w: \"ts\" must be an RFC 3339 string", ErrMalformed)
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return c, fmt.Errorf("%w: \"ts\" %q is not RFC 3339", ErrMalformed, s)
		}
		c.TS = ts
	}
	if len(obj.Value) == 0 {
		return c, fmt.Errorf("%w: no \"value\"", ErrMalformed)
	}
	v, err := jsonValue(obj.Value)
	c.Value = v
	return c, err
}

// jsonValue converts one valid JSON literal.
func jsonValue(raw []byte) (reading.Value, error) {
	switch raw[0] {
	case '"':
		var s string
		_ = json.Unmarshal(raw, &s) // valid JSON, so it decodes
		return reading.String(s), nil
	case 't':
		return reading.Bool(true), nil
	case 'f':
		return reading.Bool(false), nil
	case 'n', '{', '[':
		return reading.Value{}, fmt.Errorf("%w: the value must be a number, a boolean or a string", ErrMalformed)
	}
	s := string(raw)
	if !bytes.ContainsAny(raw, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return reading.Int(i), nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return reading.Uint(u), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return reading.Value{}, fmt.Errorf("%w: number %s is out of range", ErrMalformed, s)
	}
	return reading.Float(f), nil
}

// checkCommand applies every refusal the bridge makes itself. A ts in the
// future is accepted whatever its distance: the age limit exists to drop
// stale replays, and a gateway whose clock lags its operator's would
// otherwise refuse every command.
func checkCommand(payload []byte, retained bool, now time.Time, maxAge time.Duration) (Command, error) {
	if len(payload) > maxCommandSize {
		return Command{}, tooLarge(len(payload))
	}
	c, err := ParseCommand(payload)
	if err != nil {
		return c, err
	}
	if retained {
		return c, ErrRetained
	}
	return c, checkAge(c.TS, now, maxAge)
}

// checkAge refuses a command issued at ts (zero: unknown) more than maxAge
// before now.
func checkAge(ts, now time.Time, maxAge time.Duration) error {
	if age := now.Sub(ts); !ts.IsZero() && age > maxAge {
		return fmt.Errorf("%w: ts %s is %s old, more than command_max_age %s",
			ErrExpired, ts.UTC().Format(time.RFC3339), age.Round(time.Millisecond), maxAge)
	}
	return nil
}

// CheckCommand applies to a command given other than through a broker
// (`fieldgate write`) the refusals the bridge makes of one it receives:
// the size limit, the payload's form and its ts against maxAge
// (command_max_age). Such a command is never retained.
func CheckCommand(payload []byte, now time.Time, maxAge time.Duration) (Command, error) {
	return checkCommand(payload, false, now, maxAge)
}

// result is the outcome of one command, published on its result topic.
type result struct {
	adapter, point string
	id             string
	written        reading.Value
	err            error
}

// payload encodes {"id":"…","ok":true,"value":…} or
// {"id":"…","ok":false,"error":"…"}.
func (r result) payload() []byte {
	b := append(make([]byte, 0, 64), `{"id":`...)
	b = reading.String(r.id).AppendJSON(b)
	if r.err != nil {
		b = append(b, `,"ok":false,"error":`...)
		b = reading.String(r.err.Error()).AppendJSON(b)
	} else {
		b = append(b, `,"ok":true,"value":`...)
		b = r.written.AppendJSON(b)
	}
	return append(b, '}')
}

// tooLarge refuses a command of size bytes.
func tooLarge(size int) error { return fmt.Errorf("%w (%d bytes)", ErrTooLarge, size) }
