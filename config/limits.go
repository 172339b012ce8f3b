package config

import (
	"fmt"
	"strings"
)

// Limits on what a config file may hold, so that loading any file, however
// broken or hostile, takes bounded time and memory: a bad file given at
// SIGHUP must never harm the running gateway (SPEC §1). The TOML parser
// does work quadratic in the nesting of inline tables and in the parts of
// dotted keys, and recurses once per level of nesting, so these are checked
// on the raw text before it runs. Real files stay far inside them.
const (
	maxFileSize = 1 << 20  // bytes
	maxDepth    = 8        // arrays and inline tables inside each other
	maxKeyParts = 8        // parts of a dotted key or table name
	maxKeyLen   = 256      // bytes of a key or table name, all parts
	maxString   = 64 << 10 // bytes of one string, quotes included
	maxItems    = 50_000   // key/value pairs, table headers and array elements, weighted (see item)
	maxErrors   = 100      // problems reported; the rest are only counted
)

// shape is one pass over the raw text of a file that enforces the limits.
// It follows TOML far enough to tell keys from values and strings and
// comments from the rest; where the text is not valid TOML it may misjudge,
// but the parser then stops at the first error, before any structure past
// it exists.
type shape struct {
	src       string
	i         int
	line      int
	lineStart int

	stack    []byte // open '[' and '{' of values
	key      bool   // reading a key: at the start of a top-level line, in a header, after '{' or ','  of an inline table
	keyParts int
	keyLen   int
	items    int
}

// checkShape reports the first limit src exceeds, located, or nil.
func checkShape(file, src string) *Error {
	if len(src) > maxFileSize {
		return &Error{File: file, Msg: fmt.Sprintf("larger than %s", Size(maxFileSize))}
	}
	s := &shape{src: src, line: 1}
	s.startKey()
	if msg := s.scan(); msg != "" {
		return &Error{File: file, Line: s.line, Col: s.i - s.lineStart + 1, Msg: msg}
	}
	return nil
}

// scan returns what limit was passed, at s.i, or "".
func (s *shape) scan() string {
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '#':
			for s.i < len(s.src) && s.src[s.i] != '\n' {
				s.i++
			}
			continue
		case c == '\n':
			s.newline()
			if len(s.stack) == 0 {
				s.startKey()
			}
		case c == '"' || c == '\'':
			start := s.i
			if msg := s.str(); msg != "" {
				return msg
			}
			if s.key {
				if msg := s.grow(s.i - start); msg != "" {
					return msg
				}
			}
			continue
		case c == '[' && s.key && len(s.stack) == 0:
			// A table header ([a.b] or [[a.b]]): its name is a key.
			if s.keyLen == 0 && s.keyParts == 1 && (s.i == 0 || s.src[s.i-1] != '[') {
				s.startKey()
			}
		case c == ']' && s.key && len(s.stack) == 0:
			s.key = false
			if msg := s.item(s.keyParts); msg != "" {
				return msg
			}
		case c == '[' || c == '{':
			if len(s.stack) == maxDepth {
				return fmt.Sprintf("arrays and inline tables nested more than %d deep", maxDepth)
			}
			s.stack = append(s.stack, c)
			weight := 1
			if c == '{' {
				s.startKey()
				weight = len(s.stack)
			}
			if msg := s.item(weight); msg != "" {
				return msg
			}
		case c == ']' || c == '}':
			if len(s.stack) > 0 {
				s.stack = s.stack[:len(s.stack)-1]
			}
			s.key = false
		case c == ',':
			if n := len(s.stack); n > 0 && s.stack[n-1] == '{' {
				s.startKey()
			} else if msg := s.item(1); msg != "" {
				return msg
			}
		case c == '=' && s.key:
			s.key = false
			if msg := s.item(s.keyParts); msg != "" {
				return msg
			}
		case c == '.' && s.key:
			if s.keyParts++; s.keyParts > maxKeyParts {
				return fmt.Sprintf("a key or table name of more than %d parts", maxKeyParts)
			}
		case s.key && c != ' ' && c != '\t' && c != '\r':
			if msg := s.grow(1); msg != "" {
				return msg
			}
		}
		s.i++
	}
	return ""
}

func (s *shape) newline() { s.line, s.lineStart = s.line+1, s.i+1 }

func (s *shape) startKey() { s.key, s.keyParts, s.keyLen = true, 1, 0 }

func (s *shape) grow(n int) string {
	if s.keyLen += n; s.keyLen > maxKeyLen {
		return fmt.Sprintf("a key or table name longer than %d bytes", maxKeyLen)
	}
	return ""
}

// item counts one key, table or element; the parser's work on one grows
// with the parts of its key and its depth among inline tables, so it counts
// that many times.
func (s *shape) item(weight int) string {
	if s.items += weight; s.items > maxItems {
		return fmt.Sprintf("more than %d keys, tables and array elements (dotted and nested ones count once per level)", maxItems)
	}
	return ""
}

// str skips the string starting at s.i, of any of TOML's four kinds. An
// unterminated one-line string ends at the line's end, where the parser
// stops too.
func (s *shape) str() string {
	start, line, lineStart := s.i, s.line, s.lineStart
	q := s.src[s.i]
	delim := strings.Repeat(string(q), 3)
	if strings.HasPrefix(s.src[s.i:], delim) {
		s.i += 3
		for s.i < len(s.src) && !strings.HasPrefix(s.src[s.i:], delim) {
			switch s.src[s.i] {
			case '\\':
				if q == '"' {
					s.i++ // the escaped character, a newline included
					if s.i < len(s.src) && s.src[s.i] == '\n' {
						s.newline()
					}
				}
			case '\n':
				s.newline()
			}
			s.i++
		}
		// One or two quotes may end the content right before the delimiter.
		for n := 0; n < 5 && s.i < len(s.src) && s.src[s.i] == q; n++ {
			s.i++
		}
	} else {
		s.i++
		for s.i < len(s.src) && s.src[s.i] != '\n' {
			c := s.src[s.i]
			s.i++
			if c == q {
				break
			}
			if c == '\\' && q == '"' && s.i < len(s.src) && s.src[s.i] != '\n' {
				s.i++
			}
		}
	}
	if s.i-start > maxString {
		s.i, s.line, s.lineStart = start, line, lineStart
		return fmt.Sprintf("a string longer than %s", Size(maxString))
	}
	return ""
}
