// Package config loads fieldgate's TOML file (SPEC §2): it expands ${VAR}
// from the environment, rejects unknown keys, fills every default in place and
// validates the whole file, reporting each problem as file:line:col with the
// key it concerns. A *Config returned by Load is complete: consumers read
// fields and never re-derive defaults.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads and validates the config file at path. Errors in the file come
// back as Errors, naming path as given; relative password_file paths are
// taken from path's directory.
func Load(path string) (*Config, error) {
	data, err := readLimited(path, maxFileSize)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, Errors{{File: path, Msg: err.Error()}}
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	dir := filepath.Dir(path)
	return parse(path, data, os.LookupEnv, func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return readLimited(name, maxSecretFile)
	})
}

// maxSecretFile bounds what password_file may hold, so a mistake like
// /dev/zero cannot stall the gateway at start.
const maxSecretFile = 64 << 10

var errTooLarge = errors.New("larger than")

// readLimited reads a file of at most limit bytes, never more than that
// into memory: a config or password file named by mistake (/dev/zero, a
// log) cannot exhaust it.
func readLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s: %w %s", name, errTooLarge, Size(limit))
	}
	return b, err
}

// loader collects the problems of one file.
type loader struct {
	file     string
	lookup   func(string) (string, bool)  // the environment, for ${NAME}
	readFile func(string) ([]byte, error) // for password_file
	at       map[string]pos               // where each key is, see positions.go
	defined  map[string]bool              // keys present in the file, so a default never overrides an explicit value
	reported map[string]bool              // one error per key is enough
	claims   map[string]claimant          // resources (serial ports, GPIO lines) by their first user
	adapters []decodedAdapter             // as decoded, in key order
	errs     Errors
	unshown  int // problems past maxErrors

	adapterNodes []node // Config.Adapters' tables
}

// parse is Load after reading the file, with the machine's environment and
// files passed in so tests and the fuzzer stay hermetic.
func parse(file string, data []byte, lookup func(string) (string, bool), readFile func(string) ([]byte, error)) (*Config, error) {
	if e := checkShape(file, string(data)); e != nil {
		return nil, Errors{e}
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		// The parser's error quotes the text it stumbled on, which may be
		// an unquoted password: it is not kept, and its message is shown
		// with the offending line's value taken out.
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Errors{syntaxError(file, data, pe)}
		}
		return nil, Errors{{File: file, Msg: redactSyntax(err.Error(), string(data))}}
	}
	l := &loader{
		file: file, lookup: lookup, readFile: readFile,
		at:       locate(string(data)),
		defined:  map[string]bool{},
		reported: map[string]bool{},
		claims:   map[string]claimant{},
	}
	c := new(Config)
	l.decodeTable(node{}, raw, reflect.ValueOf(c).Elem())
	// File order: each adapter's table header (or inline table) is where
	// it starts; the decode order of kinds is only alphabetical.
	slices.SortStableFunc(l.adapters, func(a, b decodedAdapter) int {
		pa, pb := l.find(a.n.path), l.find(b.n.path)
		return cmp.Or(cmp.Compare(pa.line, pb.line), cmp.Compare(pa.col, pb.col))
	})
	for _, a := range l.adapters {
		c.Adapters = append(c.Adapters, a.Adapter)
		l.adapterNodes = append(l.adapterNodes, a.n)
	}
	l.check(c)
	if len(l.errs) > 0 {
		slices.SortStableFunc(l.errs, func(a, b *Error) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
		})
		if l.unshown > 0 {
			l.errs = append(l.errs, &Error{File: file, Msg: fmt.Sprintf("%d more problems not shown", l.unshown)})
		}
		return nil, l.errs
	}
	return c, nil
}

// fail records a problem with key k of table n (k may be "" for the table
// itself), placed at the key if the file has it, else at the nearest table
// header around it.
func (l *loader) fail(n node, k string, err error, msg string) {
	path := n.path
	if k != "" {
		path = join(path, k)
	}
	if l.reported[path] {
		return
	}
	l.reported[path] = true
	if len(l.errs) == maxErrors {
		l.unshown++
		return
	}
	p := l.find(path)
	l.errs = append(l.errs, &Error{File: l.file, Line: p.line, Col: p.col, Key: n.key, Msg: msg, Err: err})
}

func (l *loader) errorf(n node, k, format string, args ...any) {
	l.fail(n, k, nil, fmt.Sprintf(format, args...))
}

func (l *loader) find(path string) pos {
	for path != "" {
		if p, ok := l.at[path]; ok {
			return p
		}
		i := strings.LastIndex(path, sep)
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return pos{}
}
