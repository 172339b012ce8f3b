package adapters

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// AsBool interprets a command value as a boolean: true/false, the numbers 1
// and 0, and the strings on/off, true/false, 1/0 in any case.
func AsBool(v reading.Value) (bool, error) {
	switch v.Kind() {
	case reading.KindBool:
		return v.Bits() != 0, nil
	case reading.KindInt, reading.KindUint, reading.KindFloat:
		f, _ := v.Float64()
		switch f {
		case 0:
			return false, nil
		case 1:
			return true, nil
		}
	case reading.KindString:
		switch strings.ToLower(strings.TrimSpace(v.Str())) {
		case "on", "true", "1":
			return true, nil
		case "off", "false", "0":
			return false, nil
		}
	}
	return false, fmt.Errorf("%w: %s is not a boolean (use true/false, on/off or 1/0)", ErrBadValue, v)
}

// AsFloat interprets a command value as a number; numeric strings are
// accepted because plain-text payloads arrive as strings.
func AsFloat(v reading.Value) (float64, error) {
	switch v.Kind() {
	case reading.KindString:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.Str()), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%w: %q is not a number", ErrBadValue, v.Str())
		}
		return f, nil
	case reading.KindBool:
		return 0, fmt.Errorf("%w: %s is not a number", ErrBadValue, v)
	}
	f, ok := v.Float64()
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: %s is not a number", ErrBadValue, v)
	}
	return f, nil
}
