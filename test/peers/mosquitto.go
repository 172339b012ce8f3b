package peers

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MosquittoOptions configures a test's Mosquitto.
type MosquittoOptions struct {
	// TLS adds a TLS listener (TLSPort) next to the plain one.
	TLS *MosquittoTLS
	// Persistence keeps sessions and retained messages across Stop/Start.
	Persistence bool
}

// MosquittoTLS is the TLS listener's material, as PEM files.
type MosquittoTLS struct {
	CAFile, CertFile, KeyFile string
	// RequireCertificate makes clients present a certificate signed by CAFile.
	RequireCertificate bool
	// IdentityAsUsername takes each client's certificate CN as its
	// username, which the broker logs at each connection.
	IdentityAsUsername bool
}

// Mosquitto is a mosquitto broker run by a test as a subprocess, listening on
// loopback ports that stay the same across Stop and Start. Anonymous clients
// are allowed.
type Mosquitto struct {
	Port    int // plain MQTT
	TLSPort int // TLS, when asked for

	t    testing.TB
	conf string
	proc *Process // nil while stopped
	log  Lines    // across restarts
}

// mosquittoReady is what mosquitto logs once its listeners are open.
const mosquittoReady = " running"

// StartMosquitto starts /usr/sbin/mosquitto (or the one on PATH) and stops it
// when the test ends. Without mosquitto the test fails under CI=true and is
// skipped otherwise.
func StartMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	bin := mosquittoPath()
	if bin == "" {
		Missing(t, "mosquitto is required (apt-get install mosquitto)")
	}
	dir := t.TempDir()
	m := &Mosquitto{Port: freePort(t), t: t, conf: filepath.Join(dir, "mosquitto.conf")}
	var c strings.Builder
	// Subscribers in tests read as fast as they can: never drop what they
	// have not taken yet (the default drops beyond 1000 queued messages).
	fmt.Fprintf(&c, "per_listener_settings false\nallow_anonymous true\nmax_queued_messages 0\n")
	if u, err := user.Current(); err == nil {
		fmt.Fprintf(&c, "user %s\n", u.Username) // as root, do not drop to user mosquitto
	}
	fmt.Fprintf(&c, "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nconnection_messages true\n")
	if opts.Persistence {
		fmt.Fprintf(&c, "persistence true\npersistence_location %s/\n", dir)
	} else {
		fmt.Fprintf(&c, "persistence false\n")
	}
	fmt.Fprintf(&c, "listener %d 127.0.0.1\n", m.Port)
	if opts.TLS != nil {
		m.TLSPort = freePort(t)
		fmt.Fprintf(&c, "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate %t\nuse_identity_as_username %t\n",
			m.TLSPort, opts.TLS.CAFile, opts.TLS.CertFile, opts.TLS.KeyFile, opts.TLS.RequireCertificate, opts.TLS.IdentityAsUsername)
	}
	if err := os.WriteFile(m.conf, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", &m.log)
		}
	})
	return m
}

func mosquittoPath() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

// Log is what mosquitto has logged, across restarts.
func (m *Mosquitto) Log() *Lines { return &m.log }

// URL is the plain listener as a fieldgate url.
func (m *Mosquitto) URL() string { return "mqtt://127.0.0.1:" + strconv.Itoa(m.Port) }

// TLSURL is the TLS listener as a fieldgate url.
func (m *Mosquitto) TLSURL() string { return "mqtts://127.0.0.1:" + strconv.Itoa(m.TLSPort) }

// Start starts mosquitto and returns once it listens; a no-op while it runs.
func (m *Mosquitto) Start() {
	m.t.Helper()
	if m.proc != nil {
		return
	}
	cmd := exec.Command(mosquittoPath(), "-c", m.conf)
	cmd.Stdout, cmd.Stderr = &m.log, &m.log
	proc, err := StartProcess(m.t, cmd, &m.log, mosquittoReady, 10*time.Second)
	if err != nil {
		m.t.Fatalf("%v:\n%s", err, &m.log)
	}
	m.proc = proc
}

// Stop stops mosquitto (saving its persistence file if it keeps one); a
// no-op when it is not running.
func (m *Mosquitto) Stop() {
	if m.proc != nil {
		m.proc.Stop()
		m.proc = nil
	}
}
