package peers

import (
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// Notify is a systemd notification socket (NOTIFY_SOCKET) for a test: each
// state a process sends to Path becomes a line, in order, to await as any
// process's output.
type Notify struct {
	Path string
	Lines
}

// ListenNotify opens the socket until the test ends.
func ListenNotify(t testing.TB) *Notify {
	t.Helper()
	n := &Notify{Path: filepath.Join(t.TempDir(), "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	var reader sync.WaitGroup
	reader.Go(func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			_, _ = n.Write(append(buf[:k], '\n'))
		}
	})
	t.Cleanup(func() {
		_ = conn.Close()
		reader.Wait()
	})
	return n
}
