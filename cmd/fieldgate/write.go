package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/fieldgate/fieldgate/adapters"
	"github.com/fieldgate/fieldgate/bridge"
	"github.com/fieldgate/fieldgate/config"
	"github.com/fieldgate/fieldgate/internal/reading"
)

// commandTimeout bounds a write and its read-back, as the bridge bounds a
// command from a broker.
const commandTimeout = 10 * time.Second

// write is `fieldgate write ADAPTER/POINT VALUE`: VALUE is a command
// payload, refused for exactly the reasons a command from a broker is
// (bridge.CheckCommand, then the adapter's own checks), and written
// through the adapter, which reads the point back.
func write(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("write", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", defaultConfig, "configuration `file`")
	wait := fs.Duration("wait", 10*time.Second, "how long the adapter may take to start")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitBadConfig
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, `usage: fieldgate write [-c FILE] ADAPTER/POINT VALUE   (VALUE: 21.5, true, on, "text", or {"value": …, "ts": "…"})`)
		return exitBadConfig
	}
	adapterName, point, err := splitTarget(pos[0], false)
	if err != nil {
		fmt.Fprintf(stderr, "fieldgate write: %v\n", err)
		return exitBadConfig
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigError(stderr, err)
		return exitBadConfig
	}
	refuse := func(err error) int {
		fmt.Fprintf(stderr, "fieldgate write: refused: %v\n", err)
		return exitRuntime
	}
	cmd, err := bridge.CheckCommand([]byte(pos[1]), time.Now(), cfg.Gateway.CommandMaxAge.D())
	if err != nil {
		return refuse(err)
	}
	spec, err := findAdapter(cfg, adapterName)
	if err != nil {
		return refuse(fmt.Errorf("adapter %q: %w", adapterName, adapters.ErrNoPoint)) // as the gateway says it
	}
	o, err := startOneShot(spec, cliLogger(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "fieldgate write: %v\n", err)
		return exitRuntime
	}
	defer o.stop()
	// The adapter serves writes once it runs; its first status says so.
	if !o.await(*wait, func(_ map[string]reading.Reading, _ error, reported bool) bool { return reported }) {
		fmt.Fprintf(stderr, "fieldgate write: adapter %q did not start within %s\n", spec.Name, *wait)
		return exitRuntime
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	written, back, err := command(ctx, o.a, point, cmd.Value)
	if err != nil {
		if refused(err) {
			return refuse(err)
		}
		fmt.Fprintf(stderr, "fieldgate write: failed: %v\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "%s/%s: wrote %s, read back %s at %s\n", spec.Name, point, valueText(written),
		valueText(back.Value), back.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	return exitOK
}

// refused reports whether a write was refused before it reached the
// hardware: the point or the value does not fit.
func refused(err error) bool {
	for _, r := range adapters.Refusals {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}
