package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestLocate(t *testing.T) {
	src := "\uFEFF" + `top = """
multi "" line \"""
"""  # ends here
lit = '''x
'' y'''
"quoted.key" = 1
'lit key' = { a = 1, b = [ 1, # comment
  2 ], c = { d = "}" } }
dotted . key = "v"
[[arr]]
x = 1
[arr.sub]
y = [
  "one",
  'two',
]
[[arr]]
x = 2
  [[arr.pts]]
  z = 0
  [[arr.pts]]
  z = 1
[ "tbl" . 'x' ]
w = 1979-05-27 07:32:00Z
v = 1
`
	if _, err := toml.Decode(src, new(map[string]any)); err != nil {
		t.Fatalf("test document is not valid TOML: %v", err)
	}
	at := locate(src)
	for _, tt := range []struct {
		path string
		want pos
	}{
		{"top", pos{1, 1}},
		{"lit", pos{4, 1}},
		{"quoted.key", pos{6, 1}},
		{"lit key", pos{7, 1}},
		{"lit key␀a", pos{7, 15}},
		{"lit key␀b␀1", pos{8, 3}},
		{"lit key␀c␀d", pos{8, 14}},
		{"dotted␀key", pos{9, 1}},
		{"arr␀0", pos{10, 1}},
		{"arr␀0␀x", pos{11, 1}},
		{"arr␀0␀sub", pos{12, 1}},
		{"arr␀0␀sub␀y␀1", pos{15, 3}},
		{"arr␀1␀x", pos{18, 1}},
		{"arr␀1␀pts␀0␀z", pos{20, 3}},
		{"arr␀1␀pts␀1", pos{21, 3}},
		{"arr␀1␀pts␀1␀z", pos{22, 3}},
		{"tbl␀x␀w", pos{24, 1}},
		{"tbl␀x␀v", pos{25, 1}},
	} {
		path := strings.ReplaceAll(tt.path, "␀", sep)
		if got, ok := at[path]; !ok || got != tt.want {
			t.Errorf("%s at %v (found %v), want %v", tt.path, got, ok, tt.want)
		}
	}
}
