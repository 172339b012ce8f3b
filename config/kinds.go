package config

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/internal/reading"
)

// AdapterConfig is the config of one adapter table ([[modbus]], [[gpio]],
// …). Each adapter kind defines its own struct, with `toml` tags for its
// keys, and registers it (adapters.Register does so); the loader decodes a
// table into a fresh one, then calls Check.
type AdapterConfig interface {
	// AdapterName returns the table's name key, as decoded.
	AdapterName() string
	// Check fills every default in place and validates the table,
	// reporting each problem through c. The loader has checked the name.
	Check(c *Check)
	// PointInfo describes the adapter's points, after Check.
	PointInfo() []reading.Point
	// PollInterval is the shortest time between two reads the adapter
	// makes on a timer (its own interval or a point's), after Check; 0
	// when it reads only on events.
	PollInterval() time.Duration
	// Summary describes the adapter in a few words for `fieldgate check`,
	// with no secret in it.
	Summary() string
}

// Adapter is one configured adapter.
type Adapter struct {
	Kind   string // the table's name: "modbus", "serial", "gpio"
	Name   string
	Config AdapterConfig
}

var (
	kindsMu sync.Mutex
	kinds   = map[string]func() AdapterConfig{}
)

// RegisterKind makes the table kind ([[kind]]) known to the loader, which
// decodes each of its elements into a fresh AdapterConfig from newConfig.
// It panics on a duplicate or a name the config takes for itself, which
// are programming errors caught at start-up.
func RegisterKind(kind string, newConfig func() AdapterConfig) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[kind]; dup || fieldIndex(reflect.TypeFor[Config]())[kind] != nil {
		panic(fmt.Sprintf("config: kind %q registered twice or reserved", kind))
	}
	kinds[kind] = newConfig
}

// Kinds lists the registered adapter kinds, sorted.
func Kinds() []string {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	ks := make([]string, 0, len(kinds))
	for k := range kinds {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func kindConfig(kind string) (func() AdapterConfig, bool) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	f, ok := kinds[kind]
	return f, ok
}
