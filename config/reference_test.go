package config_test

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/config"
)

// referenceFile is the configuration reference the tests keep complete.
const referenceFile = "../docs/CONFIG.md"

// documentedKey is one row of the reference.
type documentedKey struct {
	table, typ string
	line       int
}

// readReference reads the key rows of the reference: each "| `path` |
// type | …" row, under the "## `[table]`" heading of its table.
func readReference(t *testing.T) map[string]documentedKey {
	t.Helper()
	f, err := os.Open(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]documentedKey{}
	table := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if h, ok := strings.CutPrefix(l, "## "); ok {
			table = strings.Trim(h, "`")
			continue
		}
		if !strings.HasPrefix(l, "| `") {
			continue
		}
		cells := strings.SplitN(l, "|", 4)
		path := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, dup := keys[path]; dup {
			t.Errorf("%s:%d: %s is documented twice", referenceFile, n, path)
		}
		keys[path] = documentedKey{table: table, typ: strings.TrimSpace(cells[2]), line: n}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestReferenceIsComplete keeps docs/CONFIG.md and the loader in step:
// every key the loader accepts (config.Keys, with every registered adapter
// kind's) is documented under its table's heading with its type, and every
// key documented is one the loader accepts.
func TestReferenceIsComplete(t *testing.T) {
	doc := readReference(t)
	keys := config.Keys()
	accepted := map[string]bool{}
	for _, k := range keys {
		accepted[k.Path] = true
		d, ok := doc[k.Path]
		switch {
		case !ok:
			t.Errorf("%s lacks %s (%s, in %s)", referenceFile, k.Path, k.Type, k.Table)
		case d.table != k.Table:
			t.Errorf("%s:%d: %s is under %q, want %q", referenceFile, d.line, k.Path, d.table, k.Table)
		case d.typ != k.Type:
			t.Errorf("%s:%d: %s has type %q, want %q", referenceFile, d.line, k.Path, d.typ, k.Type)
		}
	}
	for path, d := range doc {
		if !accepted[path] {
			t.Errorf("%s:%d: %s is documented, but the loader does not accept it", referenceFile, d.line, path)
		}
	}
	if len(keys) < 80 {
		t.Errorf("config.Keys lists %d keys: the adapter kinds are not registered?", len(keys))
	}
}

// samples are values of each type, for TestKeysAreAccepted.
var samples = map[string]string{
	"string": `"x"`, "integer": "1", "float": "1.5", "boolean": "true",
	"duration": `"1s"`, "size": `"1MiB"`, "array of strings": `["x"]`,
}

// TestKeysAreAccepted sets each key config.Keys lists in a file of its
// own, under its table and the tables around it, and loads it: the loader
// may find the file wanting in other ways, but never the key unknown.
func TestKeysAreAccepted(t *testing.T) {
	keys := config.Keys()
	headers := map[string]string{} // table path → header
	for _, k := range keys {
		headers[strings.Trim(k.Table, "[]")] = k.Table
	}
	dir := t.TempDir()
	for _, k := range keys {
		var b strings.Builder
		table := strings.Trim(k.Table, "[]")
		parts := strings.Split(table, ".")
		for i := range parts {
			b.WriteString(headers[strings.Join(parts[:i+1], ".")] + "\n")
		}
		sample, ok := samples[k.Type]
		if !ok {
			t.Fatalf("%s: no sample of type %q", k.Path, k.Type)
		}
		b.WriteString(strings.TrimPrefix(k.Path, table+".") + " = " + sample + "\n")
		path := filepath.Join(dir, "fieldgate.toml")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := config.Load(path)
		var errs config.Errors
		if err != nil && !errors.As(err, &errs) {
			t.Fatalf("%s: %v", k.Path, err)
		}
		for _, e := range errs {
			if strings.Contains(e.Msg, "unknown key") || strings.Contains(e.Msg, ", got ") {
				t.Errorf("%s = %s:\n%s\n%v", k.Path, sample, b.String(), e)
			}
		}
	}
}
