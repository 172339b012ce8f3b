package config

import (
	"strconv"
	"strings"
)

// The TOML library reports positions for syntax errors only, and keys inside
// arrays of tables ([[modbus.point]]) share one name, so it cannot say which
// element a key belongs to. locate walks the (already syntax-checked) source
// once and records where every key, table header and array element starts,
// under a path that includes array indices: "modbus␀0␀point␀2␀type".

// pos is a place in the source: 1-based line and byte column.
type pos struct{ line, col int }

// sep joins path segments; it cannot occur in a bare key.
const sep = "\x00"

func join(path, seg string) string {
	if path == "" {
		return seg
	}
	return path + sep + seg
}

type locator struct {
	src       string
	i         int
	line, col int
	at        map[string]pos
	arrays    map[string]int // [[header]] path -> elements so far
}

// locate returns the position of every key, header and array element in src.
// It never fails: on input it does not understand it stops early, and the
// keys it missed are reported without a position.
func locate(src string) map[string]pos {
	l := &locator{src: src, line: 1, col: 1, at: map[string]pos{}, arrays: map[string]int{}}
	if strings.HasPrefix(src, "\uFEFF") { // a byte-order mark takes no column
		l.i = len("\uFEFF")
	}
	table := ""
	for {
		l.skipSpace(true)
		if l.eof() {
			return l.at
		}
		start := l.i
		switch l.peek() {
		case '[':
			table = l.header()
		default:
			l.keyval(table)
		}
		if l.i == start { // not progressing: give up rather than loop
			return l.at
		}
	}
}

func (l *locator) eof() bool         { return l.i >= len(l.src) }
func (l *locator) peek() byte        { return l.src[l.i] }
func (l *locator) here() pos         { return pos{l.line, l.col} }
func (l *locator) has(s string) bool { return strings.HasPrefix(l.src[l.i:], s) }

func (l *locator) advance(n int) {
	for ; n > 0 && !l.eof(); n-- {
		if l.src[l.i] == '\n' {
			l.line, l.col = l.line+1, 1
		} else {
			l.col++
		}
		l.i++
	}
}

func (l *locator) record(path string, p pos) {
	if _, ok := l.at[path]; !ok {
		l.at[path] = p
	}
}

// skipSpace skips blanks and comments, and newlines too when nl is set.
func (l *locator) skipSpace(nl bool) {
	for !l.eof() {
		switch c := l.peek(); {
		case c == ' ' || c == '\t' || (nl && (c == '\n' || c == '\r')):
			l.advance(1)
		case c == '#':
			for !l.eof() && l.peek() != '\n' {
				l.advance(1)
			}
		default:
			return
		}
	}
}

// header reads [a.b] or [[a.b]] and returns the path of the table it opens.
func (l *locator) header() string {
	p := l.here()
	array := l.has("[[")
	if array {
		l.advance(2)
	} else {
		l.advance(1)
	}
	segs := l.key()
	path := ""
	for j, s := range segs {
		path = join(path, s)
		n, isArray := l.arrays[path]
		switch {
		case array && j == len(segs)-1:
			l.arrays[path] = n + 1
			path = join(path, strconv.Itoa(n))
		case isArray && n > 0:
			path = join(path, strconv.Itoa(n-1))
		}
		l.record(path, p)
	}
	l.skipSpace(false)
	if array && l.has("]]") {
		l.advance(2)
	} else if l.has("]") {
		l.advance(1)
	}
	return path
}

// keyval reads key = value inside table and records both.
func (l *locator) keyval(table string) {
	p := l.here()
	segs := l.key()
	if len(segs) == 0 {
		return
	}
	path := table
	for _, s := range segs {
		path = join(path, s)
		l.record(path, p)
	}
	l.skipSpace(false)
	if l.eof() || l.peek() != '=' {
		return
	}
	l.advance(1)
	l.skipSpace(false)
	l.value(path)
}

// key reads a possibly dotted, possibly quoted key.
func (l *locator) key() []string {
	var segs []string
	for {
		l.skipSpace(false)
		if l.eof() {
			return segs
		}
		var seg string
		switch l.peek() {
		case '"':
			raw := l.str('"')
			if u, err := strconv.Unquote(raw); err == nil {
				seg = u
			} else {
				seg = strings.Trim(raw, `"`)
			}
		case '\'':
			seg = strings.Trim(l.str('\''), "'")
		default:
			start := l.i
			for !l.eof() && !strings.ContainsRune(" \t\r\n=.[]{}\"'#,", rune(l.peek())) {
				l.advance(1)
			}
			if l.i == start {
				return segs
			}
			seg = l.src[start:l.i]
		}
		segs = append(segs, seg)
		l.skipSpace(false)
		if l.eof() || l.peek() != '.' {
			return segs
		}
		l.advance(1)
	}
}

// str reads a one-line string quoted with q and returns it with its quotes.
func (l *locator) str(q byte) string {
	start := l.i
	l.advance(1)
	for !l.eof() && l.peek() != q && l.peek() != '\n' {
		if q == '"' && l.peek() == '\\' {
			l.advance(1)
		}
		l.advance(1)
	}
	l.advance(1)
	return l.src[start:l.i]
}

// value skips one value, recording array elements and inline-table keys
// under path.
func (l *locator) value(path string) {
	if l.eof() {
		return
	}
	switch c := l.peek(); {
	case l.has(`"""`) || l.has(`'''`):
		delim := l.src[l.i : l.i+3]
		l.advance(3)
		for !l.eof() && !l.has(delim) {
			if c == '"' && l.peek() == '\\' {
				l.advance(1)
			}
			l.advance(1)
		}
		l.advance(3)
		for n := 0; n < 2 && !l.eof() && l.peek() == c; n++ { // quotes just before the closing delimiter
			l.advance(1)
		}
	case c == '"' || c == '\'':
		l.str(c)
	case c == '[':
		l.items(']', func(n int) {
			elem := join(path, strconv.Itoa(n))
			l.record(elem, l.here())
			l.value(elem)
		})
	case c == '{':
		l.items('}', func(int) { l.keyval(path) })
	default: // number, boolean, date: runs to a delimiter
		for !l.eof() && !strings.ContainsRune(",]}#\r\n", rune(l.peek())) {
			l.advance(1)
		}
	}
}

// items skips an array or an inline table, from its opening bracket to
// closing: comma-separated items, each read by item with its index. Where an
// item reads nothing it gives up rather than loop.
func (l *locator) items(closing byte, item func(n int)) {
	l.advance(1)
	for n := 0; ; n++ {
		l.skipSpace(true)
		if l.eof() || l.peek() == closing {
			break
		}
		start := l.i
		item(n)
		l.skipSpace(true)
		if !l.eof() && l.peek() == ',' {
			l.advance(1)
		} else if l.i == start {
			return
		}
	}
	l.advance(1)
}
