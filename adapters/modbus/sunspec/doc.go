// Package sunspec holds the SunSpec Alliance's information model
// definitions, which the Modbus adapter lays over a SunSpec device's
// registers: every model's groups and points with their types, sizes,
// scale factors, units and access.
//
// The tables in models_gen.go are generated from the Alliance's JSON
// definitions in models/ (github.com/sunspec/models, Apache-2.0: see
// LICENSE and NOTICE) by internal/gen:
//
//	go generate ./adapters/modbus/sunspec
//
// To follow a new release of the definitions, copy its json/model_*.json
// into models/ and generate again; the package test fails while the tables
// and the JSON disagree. Generated tables rather than the JSON embedded and
// parsed at start: they add less to the binary and cost nothing at start
// (see README's SunSpec section for the figures).
package sunspec

//go:generate go run ./internal/gen -models models -out models_gen.go

import (
	"cmp"
	"slices"
)

// Model is one SunSpec model definition.
type Model struct {
	ID    int
	Name  string // as the definitions name it: "inverter_three_phase"
	Label string // "Inverter (Three Phase)"
	// Group is the model's top-level group, named as the model; its first
	// two points are ID and L, the model's header.
	Group Group
}

// Group is a group of points, laid out in registers in order: its points,
// then its groups, each as often as it repeats.
type Group struct {
	Name string
	// Repeats tells a repeating group (named with an index in each
	// instance) from a group that occurs once.
	Repeats bool
	// Count is how often a repeating group occurs when CountPoint is
	// empty: as many times as the model's length leaves room for when 0.
	Count int
	// CountPoint names the point of the model's top-level group whose
	// value is how often the group occurs.
	CountPoint string
	Points     []Point
	Groups     []Group
}

// Point is one point definition.
type Point struct {
	Name string
	// Type is the SunSpec type: int16, uint16, acc16, enum16, bitfield16,
	// raw16, count, sunssf, pad, int32, uint32, acc32, enum32, bitfield32,
	// ipaddr, float32, int64, uint64, acc64, bitfield64, float64, eui48,
	// ipv6addr or string.
	Type string
	Size int // registers
	// SF names the scale factor point (of the point's group or a group
	// around it) whose value v makes the point's value raw × 10^v; when
	// it is empty, FixedSF is v.
	SF       string
	FixedSF  int
	Units    string // as the definitions write them: "W", "Pct", "C", …
	Writable bool   // access RW
}

// Lookup returns the definition of model id.
func Lookup(id int) (*Model, bool) {
	ms := models()
	i, ok := slices.BinarySearchFunc(ms, id, func(m Model, id int) int { return cmp.Compare(m.ID, id) })
	if !ok {
		return nil, false
	}
	return &ms[i], true
}

// Models returns every model definition, by id.
func Models() []Model { return slices.Clone(models()) }
