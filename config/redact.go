package config

import (
	"regexp"
	"strconv"
	"strings"
)

// quoted matches the fragments the TOML parser quotes in its messages, in
// Go's "…" or '…' forms.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)

// redactSyntax takes out of a parser message every quoted fragment of the
// value on the offending line (all of the line where it has no key), so an
// unquoted or broken password never reaches a terminal or the journal:
// `password = hunter2secret` gives `expected value but found "…" instead`.
// Keys and the parser's own tokens stay.
func redactSyntax(msg, line string) string {
	if _, value, ok := strings.Cut(line, "="); ok {
		line = value
	}
	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		inner := q[1 : len(q)-1]
		if u, err := strconv.Unquote(q); err == nil && u != "" && strings.Contains(line, u) ||
			inner != "" && strings.Contains(line, inner) {
			return `"…"`
		}
		return q
	})
}

// lineOf returns line n (1-based) of data, without its newline.
func lineOf(data []byte, n int) string {
	s := string(data)
	for i := 1; i < n; i++ {
		_, rest, ok := strings.Cut(s, "\n")
		if !ok {
			return ""
		}
		s = rest
	}
	line, _, _ := strings.Cut(s, "\n")
	return line
}
