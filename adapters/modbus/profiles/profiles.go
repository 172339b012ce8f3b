package profiles

import (
	"cmp"
	"embed"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

//go:embed *.toml
var files embed.FS

// Profile is one built-in device register map: its metadata, how many points
// it defines, and the file itself, which the Modbus adapter decodes into its
// own point type.
type Profile struct {
	Name   string // lower-case id, equal to the file name without .toml
	Maker  string
	Model  string
	Kind   string // meter | inverter | battery | drive | charger | other
	Source string // the maker's register map document: title and version
	Notes  string // line settings, unit id, caveats; may be empty
	Points int
	TOML   []byte
}

// header is the part of a profile file read here: the metadata, and the
// points left undecoded because only their number matters to this package.
// Its name key is not read: a profile is named by its file, and the package
// test checks that the two agree.
type header struct {
	Maker  string           `toml:"maker"`
	Model  string           `toml:"model"`
	Kind   string           `toml:"kind"`
	Source string           `toml:"source"`
	Notes  string           `toml:"notes"`
	Point  []toml.Primitive `toml:"point"`
}

// load reads every embedded file once. A file that does not parse is a
// build defect the package test reports by name, so it panics here.
var load = sync.OnceValue(func() []Profile {
	entries, err := files.ReadDir(".")
	if err != nil {
		panic(err)
	}
	var all []Profile
	for _, e := range entries {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			panic(err)
		}
		var h header
		if _, err := toml.Decode(string(b), &h); err != nil {
			panic(fmt.Sprintf("profile %s: %v", e.Name(), err))
		}
		all = append(all, Profile{
			Name: strings.TrimSuffix(e.Name(), ".toml"), Maker: h.Maker, Model: h.Model,
			Kind: h.Kind, Source: h.Source, Notes: h.Notes, Points: len(h.Point), TOML: b,
		})
	}
	slices.SortFunc(all, func(a, b Profile) int { return cmp.Compare(a.Name, b.Name) })
	return all
})

// All returns every built-in profile, sorted by name. The slice is a copy;
// the TOML bytes are shared and must not be modified.
func All() []Profile { return slices.Clone(load()) }

// Lookup returns the profile of that name.
func Lookup(name string) (Profile, bool) {
	all := load()
	i, ok := slices.BinarySearchFunc(all, name, func(p Profile, n string) int { return cmp.Compare(p.Name, n) })
	if !ok {
		return Profile{}, false
	}
	return all[i], true
}

// Closest returns up to n profile names nearest to name by edit distance,
// nearest first (ties by name), for a "did you mean" message. A name is also
// measured without its leading hyphenated words, so that a bare model
// ("sdm630") finds its maker-prefixed profile ("eastron-sdm630").
func Closest(name string, n int) []string {
	type scored struct {
		name string
		dist int
	}
	all := load()
	s := make([]scored, len(all))
	for i, p := range all {
		s[i] = scored{p.Name, nearest(strings.ToLower(name), p.Name)}
	}
	slices.SortFunc(s, func(a, b scored) int {
		return cmp.Or(cmp.Compare(a.dist, b.dist), cmp.Compare(a.name, b.name))
	})
	names := make([]string, 0, min(max(n, 0), len(s)))
	for _, x := range s[:cap(names)] {
		names = append(names, x.name)
	}
	return names
}

// nearest is the smallest distance from name to profile or to a tail of
// profile that starts after a hyphen.
func nearest(name, profile string) int {
	d := distance(name, profile)
	for i, c := range profile {
		if c == '-' {
			d = min(d, distance(name, profile[i+1:]))
		}
	}
	return d
}

// distance is the edit distance between a and b with adjacent
// transpositions counting one edit (optimal string alignment), so that
// "sdm360" is one typo from "sdm630"; counted in bytes: profile names are
// ASCII.
func distance(a, b string) int {
	before := make([]int, len(b)+1) // row i-2
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], before[j-2]+1)
			}
		}
		before, prev, cur = prev, cur, before
	}
	return prev[len(b)]
}
