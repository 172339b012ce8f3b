package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedTablesMatchTheJSON fails while models_gen.go is not what
// the JSON definitions generate: after an edit of either, run go generate.
func TestGeneratedTablesMatchTheJSON(t *testing.T) {
	got, err := generate(os.DirFS("../../models"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../models_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		t.Error("models_gen.go differs from what the JSON in models/ generates: run go generate ./adapters/modbus/sunspec")
	}
}
