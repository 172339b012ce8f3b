package peers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes for the test, as a small disk that
// fills for real, and unmounts it when the test ends. It needs root (CI runs
// as root); without the privilege the test fails under CI=true and is
// skipped otherwise.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput()
	if err != nil {
		Missing(t, "mounting a tmpfs needs root: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
