package test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// envRef matches a ${NAME} reference in a config file.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// TestEveryExamplePassesCheck runs `fieldgate check` on each file in
// examples/, as an operator would after copying one. Secrets in examples are
// ${NAME} references, which the test sets; files the loader does not read
// (certificates, keys) need not exist.
func TestEveryExamplePassesCheck(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "*.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range envRef.FindAllStringSubmatch(string(data), -1) {
				t.Setenv(m[1], "example-"+m[1])
			}
			if code, _, stderr := runCLI(t, "check", "-c", file); code != 0 {
				t.Errorf("exit %d:\n%s", code, stderr)
			}
		})
	}
}
