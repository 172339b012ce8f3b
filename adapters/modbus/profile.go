package modbus

import (
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/fieldgate/fieldgate/adapters/modbus/profiles"
	"github.com/fieldgate/fieldgate/config"
)

// profilePoint is one [[point]] of a profile file, in the [[modbus.point]]
// schema, with the keys the file sets.
type profilePoint struct {
	PointConfig
	set map[string]any
}

// decodeProfile reads the points of the built-in profile name as its file
// writes them, before any default is filled in, and lists the keys of the
// file that no field takes.
func decodeProfile(name string) (pts []profilePoint, unknown []string, err error) {
	p, ok := profiles.Lookup(name)
	if !ok {
		return nil, nil, fmt.Errorf("unknown profile %q; did you mean %s?", name, orList(profiles.Closest(name, 3)))
	}
	// The metadata is the profiles package's; only the points are read here.
	var f struct {
		Name, Maker, Model, Kind, Source, Notes string
		Point                                   []toml.Primitive `toml:"point"`
	}
	md, err := toml.Decode(string(p.TOML), &f)
	if err != nil {
		return nil, nil, fmt.Errorf("profile %q: %w", name, err)
	}
	pts = make([]profilePoint, len(f.Point))
	for i, prim := range f.Point {
		if err := md.PrimitiveDecode(prim, &pts[i].PointConfig); err != nil {
			return nil, nil, fmt.Errorf("profile %q point %d: %w", name, i+1, err)
		}
	}
	for _, k := range md.Undecoded() { // before the maps below take every key
		unknown = append(unknown, k.String())
	}
	for i, prim := range f.Point {
		if err := md.PrimitiveDecode(prim, &pts[i].set); err != nil {
			return nil, nil, fmt.Errorf("profile %q point %d: %w", name, i+1, err)
		}
	}
	return pts, unknown, nil
}

// ProfilePoints returns the points of the built-in profile name as its file
// writes them, before any default is filled in: what `fieldgate profiles
// NAME` prints. An unknown name's error suggests the closest ones.
func ProfilePoints(name string) ([]PointConfig, error) {
	pts, _, err := decodeProfile(name)
	if err != nil {
		return nil, err
	}
	out := make([]PointConfig, len(pts))
	for i, p := range pts {
		out[i] = p.PointConfig
	}
	return out, nil
}

// checkProfile loads the points of profile name and checks each as a
// configured point is checked, filling its defaults. Problems are reported
// at the adapter's profile key: an unknown name, with the closest ones, and
// a point that would be refused in the file, which is a defect of the
// profile that its tests catch.
func checkProfile(ck *config.Check, name string) []PointConfig {
	pts, unknown, err := decodeProfile(name)
	if err != nil {
		ck.Errorf("profile", "%v", err)
		return nil
	}
	for _, k := range unknown {
		ck.Errorf("profile", "profile %q: unknown key %q", name, k)
	}
	out := make([]PointConfig, len(pts))
	for i, p := range pts {
		out[i] = p.PointConfig
		out[i].check(ck.Builtin("profile", fmt.Sprintf("%q point %q", name, p.Name), func(k string) bool {
			_, ok := p.set[k]
			return ok
		}))
	}
	return out
}

// orList joins names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
