package config

import (
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Key is one key the loader accepts.
type Key struct {
	// Path is the key with the tables it sits in, dotted:
	// "gateway.id", "upstream.tls.ca_file", "modbus.point.address". An
	// array of tables ([[upstream]]) is named once, without an index.
	Path string
	// Table is the header of the table it sits in: "[gateway]",
	// "[[upstream]]", "[upstream.tls]", "[[modbus.point]]".
	Table string
	// Type is what its value is: string, integer, float, boolean,
	// duration (a Go duration string), size (bytes, or a string with a
	// unit) or an array of one of them ("array of strings").
	Type string
}

// Keys lists every key a config file may hold, sorted by path: the
// gateway, buffer and upstream tables' and those of every registered
// adapter kind, read from the `toml` tags of their structs as the loader
// reads them.
func Keys() []Key {
	keys := structKeys("", "", reflect.TypeFor[Config]())
	for _, kind := range Kinds() {
		newConfig, _ := kindConfig(kind)
		keys = append(keys, structKeys(kind, "[["+kind+"]]", reflect.TypeOf(newConfig()).Elem())...)
	}
	slices.SortFunc(keys, func(a, b Key) int { return strings.Compare(a.Path, b.Path) })
	return keys
}

// structKeys lists the keys of the table t describes, whose path is prefix
// and whose header is header.
func structKeys(prefix, header string, t reflect.Type) []Key {
	var keys []Key
	index := fieldIndex(t)
	for _, k := range slices.Sorted(maps.Keys(index)) {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		ft := t.FieldByIndex(index[k]).Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, structKeys(path, "[["+path+"]]", ft.Elem())...)
		case ft.Kind() == reflect.Struct:
			keys = append(keys, structKeys(path, "["+path+"]", ft)...)
		default:
			keys = append(keys, Key{Path: path, Table: header, Type: typeName(ft)})
		}
	}
	return keys
}

// typeName names a leaf value's type as the configuration reference does.
func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Duration]():
		return "duration"
	case reflect.TypeFor[Size]():
		return "size"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "float"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice:
		return "array of " + typeName(t.Elem()) + "s"
	}
	panic("config: no name for the type " + t.String()) // a field type added without a name here
}
