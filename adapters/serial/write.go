package serial

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fieldgate/fieldgate/internal/reading"

	"github.com/fieldgate/fieldgate/adapters"
)

// maxCommand bounds a rendered command: instruments take short commands, and
// a long one could overrun a device's input buffer.
const maxCommand = 256

// render checks v against the point and returns it as the point's type and
// the command that writes it: write_format with {value} replaced by the
// value's text. Numbers are written in plain decimal (never 1e+06), bools as
// true/false. Whatever could smuggle a second command or break the framing
// is refused with adapters.ErrBadValue: the delimiter, CR, LF and any other
// control character, invalid UTF-8, and commands over maxCommand bytes.
func (p *point) render(v reading.Value, delim string) (reading.Value, []byte, error) {
	if p.format == "" {
		return reading.Value{}, nil, adapters.ErrNotWritable
	}
	typed, text, err := convert(p.typ, v)
	if err != nil {
		return reading.Value{}, nil, err
	}
	if !utf8.ValidString(text) {
		return reading.Value{}, nil, fmt.Errorf("%w: %q is not valid UTF-8", adapters.ErrBadValue, text)
	}
	for _, c := range text {
		if unicode.IsControl(c) {
			return reading.Value{}, nil, fmt.Errorf("%w: control character %q in %q", adapters.ErrBadValue, c, text)
		}
	}
	if strings.Contains(text, delim) {
		return reading.Value{}, nil, fmt.Errorf("%w: %q contains the delimiter %q", adapters.ErrBadValue, text, delim)
	}
	cmd := strings.ReplaceAll(p.format, "{value}", text)
	if len(cmd) > maxCommand {
		return reading.Value{}, nil, fmt.Errorf("%w: the command would be %d bytes, more than %d", adapters.ErrBadValue, len(cmd), maxCommand)
	}
	return typed, []byte(cmd), nil
}

// convert interprets a command value as a point type and formats it.
func convert(typ string, v reading.Value) (reading.Value, string, error) {
	switch typ {
	case "float64":
		f, err := adapters.AsFloat(v)
		return reading.Float(f), strconv.FormatFloat(f, 'f', -1, 64), err
	case "int64":
		i, err := asInt(v)
		return reading.Int(i), strconv.FormatInt(i, 10), err
	case "bool":
		b, err := adapters.AsBool(v)
		return reading.Bool(b), strconv.FormatBool(b), err
	case "string":
		if v.Kind() == reading.KindInvalid {
			return reading.Value{}, "", fmt.Errorf("%w: no value", adapters.ErrBadValue)
		}
		return reading.String(v.String()), v.String(), nil
	}
	return reading.Value{}, "", fmt.Errorf("%w %q", errType, typ)
}

// asInt interprets a command value as an int64: integers that fit, integral
// floats, and strings holding either.
func asInt(v reading.Value) (int64, error) {
	switch v.Kind() {
	case reading.KindInt:
		return int64(v.Bits()), nil
	case reading.KindUint:
		if v.Bits() <= math.MaxInt64 {
			return int64(v.Bits()), nil
		}
	case reading.KindString:
		if i, err := strconv.ParseInt(strings.TrimSpace(v.Str()), 10, 64); err == nil {
			return i, nil
		}
	}
	f, err := adapters.AsFloat(v)
	if err != nil {
		return 0, err
	}
	// float64(math.MaxInt64) rounds up to 2^63, which no int64 holds.
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: %s is not a 64-bit integer", adapters.ErrBadValue, v)
	}
	return int64(f), nil
}
