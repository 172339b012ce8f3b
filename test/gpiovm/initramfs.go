// Package gpiovm runs the gpio adapter's tests against the real kernel GPIO
// uAPI on machines without GPIO hardware: run.sh builds (once, cached) a
// minimal kernel with gpio-sim, and the host test TestVM (build tag gpiovm)
// boots it in qemu with the adapter's static test binary as /init, relays
// the serial console and fails unless every test inside passed.
package gpiovm

import (
	"fmt"
	"io"
)

// WriteInitramfs writes an uncompressed initramfs (a newc cpio archive) in
// which init is /init, with the directories init mounts on, /tmp for the
// tests, and the /dev/console node the kernel opens for init's standard
// streams before anything could create it.
func WriteInitramfs(w io.Writer, init []byte) error {
	cw := &cpioWriter{w: w}
	for _, e := range []struct {
		name         string
		mode         uint32
		major, minor uint32
		data         []byte
	}{
		{name: "dev", mode: sIFDIR | 0o755},
		{name: "dev/console", mode: sIFCHR | 0o600, major: 5, minor: 1},
		{name: "proc", mode: sIFDIR | 0o755},
		{name: "sys", mode: sIFDIR | 0o755},
		{name: "tmp", mode: sIFDIR | 0o1777},
		{name: "init", mode: sIFREG | 0o755, data: init},
	} {
		cw.entry(e.name, e.mode, e.major, e.minor, e.data)
	}
	cw.entry("TRAILER!!!", 0, 0, 0, nil)
	return cw.err
}

// File type bits of a cpio entry's mode, as in stat(2).
const (
	sIFMT  = 0o170000
	sIFDIR = 0o040000
	sIFCHR = 0o020000
	sIFREG = 0o100000
)

// cpioWriter writes newc entries, keeping the first error.
type cpioWriter struct {
	w   io.Writer
	n   int64 // bytes written, for the 4-byte alignment
	ino uint32
	err error
}

func (c *cpioWriter) entry(name string, mode, rmajor, rminor uint32, data []byte) {
	c.ino++
	nlink := 1
	if mode&sIFMT == sIFDIR {
		nlink = 2
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
	// rdevmajor, rdevminor, namesize (with its NUL), check
	c.write([]byte(fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)))
	c.write(append([]byte(name), 0))
	c.pad()
	c.write(data)
	c.pad()
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}
