package config

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
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

// endOfFile rewrites the parser's name for the end of the input, a NUL rune
// that a terminal shows as nothing, into words.
var endOfFile = strings.NewReplacer(
	"invalid escape in string '\\\x00'", "the file ends inside a string",
	"'\x00'", "the end of the file",
)

// syntaxError places a parser error by its byte offset: the parser's own
// line number is off by one where the file ends inside a token.
func syntaxError(file string, data []byte, pe toml.ParseError) *Error {
	at := min(max(pe.Position.Start, 0), len(data))
	lineStart := bytes.LastIndexByte(data[:at], '\n') + 1
	line, _, _ := bytes.Cut(data[lineStart:], []byte("\n"))
	return &Error{File: file, Line: 1 + bytes.Count(data[:at], []byte("\n")), Col: at - lineStart + 1,
		Msg: redactSyntax(endOfFile.Replace(pe.Message), string(line))}
}
