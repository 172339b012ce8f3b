package config

import (
	"encoding"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
)

// The TOML library stops at the first value that does not fit its Go field.
// To report every mistake in one go, the file is parsed into plain maps and
// decode walks them against the Config structs itself: each misfit, unknown
// key and unset ${VAR} becomes one Error and the walk carries on.

// node is one table of the document: where to find it and what to call it.
type node struct {
	path string // locator path, see positions.go
	key  string // what errors call it: `modbus "boiler" point "temp"`
}

// child is a sub-table of n ([upstream.tls]).
func (n node) child(k string) node {
	return node{path: join(n.path, k), key: strings.TrimSpace(n.key + " " + k)}
}

// elem is element i of the array of tables k, labelled by its name.
func (n node) elem(k string, i int, name string) node {
	label := fmt.Sprintf("#%d", i+1)
	if name != "" {
		label = strconv.Quote(name)
	}
	return node{path: join(join(n.path, k), strconv.Itoa(i)), key: strings.TrimSpace(n.key + " " + k + " " + label)}
}

// fieldIndex maps a struct's TOML keys to field index paths, with embedded
// structs (Line, Change) flattened as the TOML library does.
func fieldIndex(t reflect.Type) map[string][]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string][]int)
	}
	m := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, idx := range fieldIndex(f.Type) {
				m[k] = append([]int{i}, idx...)
			}
			continue
		}
		if tag := f.Tag.Get("toml"); tag != "" && tag != "-" {
			m[tag] = []int{i}
		}
	}
	fieldCache.Store(t, m)
	return m
}

var fieldCache sync.Map // reflect.Type -> map[string][]int

// decodeTable fills the struct rv from the table data.
func (l *loader) decodeTable(n node, data map[string]any, rv reflect.Value) {
	fields := fieldIndex(rv.Type())
	for _, k := range slices.Sorted(maps.Keys(data)) { // sorted: errors without a position keep one order
		v := data[k]
		idx, ok := fields[k]
		if !ok {
			if newConfig, isKind := kindConfig(k); isKind && n.path == "" {
				l.defined[k] = true
				l.decodeAdapters(k, v, newConfig)
				continue
			}
			l.errorf(n, k, "unknown key %q", k)
			continue
		}
		l.defined[join(n.path, k)] = true
		l.decodeValue(n, k, v, rv.FieldByIndex(idx))
	}
}

// decodeValue stores the value of key k of table n into rv.
func (l *loader) decodeValue(n node, k string, v any, rv reflect.Value) {
	if rv.Kind() == reflect.Pointer && rv.Type().Elem().Kind() != reflect.Struct {
		elem := reflect.New(rv.Type().Elem())
		if l.decodeLeaf(n, k, v, elem.Elem()) {
			rv.Set(elem)
		}
		return
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Struct: // a table, optional ([upstream.tls]) or not
		m, ok := v.(map[string]any)
		if !ok {
			l.errorf(n, k, "%s: want a table, got %s", k, describe(v))
			return
		}
		if rv.Kind() == reflect.Pointer {
			rv.Set(reflect.New(rv.Type().Elem()))
			rv = rv.Elem()
		}
		l.decodeTable(n.child(k), m, rv)
	case reflect.Slice:
		items, ok := asSlice(v)
		if !ok {
			l.errorf(n, k, "%s: want an array, got %s", k, describe(v))
			return
		}
		s := reflect.MakeSlice(rv.Type(), len(items), len(items))
		for i, item := range items {
			if s.Index(i).Kind() == reflect.Struct {
				m, ok := item.(map[string]any)
				if !ok {
					l.errorf(n, join(k, strconv.Itoa(i)), "%s: want tables, got %s", k, describe(item))
					continue
				}
				l.decodeTable(n.elem(k, i, l.label(m)), m, s.Index(i))
				continue
			}
			l.decodeLeaf(n, join(k, strconv.Itoa(i)), item, s.Index(i))
		}
		rv.Set(s)
	default:
		l.decodeLeaf(n, k, v, rv)
	}
}

// decodeAdapters decodes the array of tables of an adapter kind, each into
// a fresh config of that kind.
func (l *loader) decodeAdapters(kind string, v any, newConfig func() AdapterConfig) {
	items, ok := asSlice(v)
	if !ok {
		l.errorf(node{}, kind, "%s: want an array of tables, got %s", kind, describe(v))
		return
	}
	for i, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			l.errorf(node{}, join(kind, strconv.Itoa(i)), "%s: want tables, got %s", kind, describe(item))
			continue
		}
		n := node{}.elem(kind, i, l.label(m))
		cfg := newConfig()
		l.decodeTable(n, m, reflect.ValueOf(cfg).Elem())
		l.adapters = append(l.adapters, decodedAdapter{Adapter{Kind: kind, Name: cfg.AdapterName(), Config: cfg}, n})
	}
}

// decodedAdapter is an adapter table and where it is.
type decodedAdapter struct {
	Adapter
	n node
}

// label is what an array element is called in errors: its name, if it has one.
func (l *loader) label(m map[string]any) string {
	s, _ := m["name"].(string)
	if x, err := expand(s, l.lookup); err == nil {
		return x
	}
	return s
}

// asSlice accepts both shapes the TOML library gives arrays.
func asSlice(v any) ([]any, bool) {
	switch v := v.(type) {
	case []any:
		return v, true
	case []map[string]any:
		s := make([]any, len(v))
		for i := range v {
			s[i] = v[i]
		}
		return s, true
	}
	return nil, false
}

// decodeLeaf stores a scalar; k may be "key␀index" for an array element. It
// reports whether the value fitted.
func (l *loader) decodeLeaf(n node, k string, v any, rv reflect.Value) bool {
	name := strings.ReplaceAll(k, sep, "[") // urls␀1 → urls[1] in messages
	if strings.Contains(k, sep) {
		name += "]"
	}
	secret := rv.Type() == reflect.TypeFor[Secret]() // its value must never reach a message
	if s, ok := v.(string); ok {
		x, err := expand(s, l.lookup)
		var unset unsetVar
		if secret && err != nil && !errors.As(err, &unset) {
			err = errors.New("bad ${NAME} reference") // the others quote the value
		}
		if err != nil {
			l.errorf(n, k, "%s: %v", name, err)
			return false
		}
		v = x
	}
	fail := func(want string) bool {
		if secret { // a password typed as a number is still a password
			l.errorf(n, k, "%s: want %s", name, want)
		} else {
			l.errorf(n, k, "%s: want %s, got %s", name, want, describe(v))
		}
		return false
	}
	p := rv.Addr().Interface()
	if u, ok := p.(toml.Unmarshaler); ok {
		if err := u.UnmarshalTOML(v); err != nil {
			l.errorf(n, k, "%s: %v", name, err)
			return false
		}
		return true
	}
	if u, ok := p.(encoding.TextUnmarshaler); ok {
		s, isStr := v.(string)
		if !isStr && rv.Type() == reflect.TypeFor[Duration]() {
			return fail(`a duration string like "1s"`)
		} else if !isStr {
			return fail("a string")
		}
		if err := u.UnmarshalText([]byte(s)); err != nil {
			l.errorf(n, k, "%s: %v", name, err)
			return false
		}
		return true
	}
	switch rv.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fail("a string")
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return fail("true or false")
		}
		rv.SetBool(b)
	case reflect.Int:
		i, ok := v.(int64)
		if !ok {
			return fail("an integer")
		}
		if rv.OverflowInt(i) {
			l.errorf(n, k, "%s: %d is out of range", name, i)
			return false
		}
		rv.SetInt(i)
	case reflect.Float64:
		switch f := v.(type) {
		case float64:
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return fail("a finite number")
			}
			rv.SetFloat(f)
		case int64:
			rv.SetFloat(float64(f))
		default:
			return fail("a number")
		}
	default:
		panic(fmt.Sprintf("config: no decoding for %s", rv.Type())) // a field type added without support here
	}
	return true
}

// describe names a TOML value's type for "want …, got …" messages.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return "string " + strconv.Quote(v)
	case int64:
		return "integer " + strconv.FormatInt(v, 10)
	case float64:
		return "float " + strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	case time.Time:
		return "a date-time"
	}
	return fmt.Sprintf("%T", v)
}

// unsetVar is a ${NAME} whose variable is not set. Its message names only
// the variable, so it is safe to show even for a password.
type unsetVar string

func (e unsetVar) Error() string { return "environment variable " + string(e) + " is not set" }

// expand replaces ${NAME} with the environment variable NAME. "$${" stands
// for a literal "${"; any other "$" is kept as it is.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // $${ → ${
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		name := s[i+2 : i+end]
		if !validVarName(name) {
			return "", fmt.Errorf("bad environment variable name %q", name)
		}
		val, ok := lookup(name)
		if !ok {
			return "", unsetVar(name)
		}
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

func validVarName(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}
