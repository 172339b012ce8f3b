package peers

import (
	"fmt"
	"os"
	"testing"
)

// Missing ends a test whose peer (a program, a package, a privilege) this
// machine lacks: under CI=true it fails, since CI installs every peer and a
// skip there would hide a missing install step; elsewhere it skips.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
