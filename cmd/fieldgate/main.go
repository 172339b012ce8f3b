// Command fieldgate is the gateway daemon: it polls field hardware, buffers
// every reading on disk and publishes to MQTT upstreams, relaying commands
// back down to the hardware. See README.md for the configuration.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/fieldgate/fieldgate/config"

	// Every adapter kind, registered with the adapters package.
	_ "github.com/fieldgate/fieldgate/adapters/all"
)

// Set by the linker (see Makefile).
var (
	version = "dev"
	commit  = "unknown"
)

const defaultConfig = "/etc/fieldgate/fieldgate.toml"

// Exit statuses of SPEC §1.
const (
	exitOK        = 0
	exitRuntime   = 1
	exitBadConfig = 2
)

// stopProfile ends the profiles a build with the profile tag takes.
var stopProfile = func() {}

func main() {
	oneCore()
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	os.Exit(code)
}

// oneCore runs the gateway's Go code on one core unless the GOMAXPROCS
// environment variable asks for more. A gateway mostly waits on devices
// and brokers, spending microseconds of CPU on a reading; across several
// cores its goroutines wake one another on different threads, which costs
// more than the parallelism gains. On the bench's 2-core machine one core
// took a third less CPU at 1,000 points a second and drained backlogs
// faster (docs/PERFORMANCE.md).
func oneCore() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitBadConfig
	}
	switch cmd := args[0]; cmd {
	case "version":
		fmt.Fprintf(stdout, "fieldgate %s (commit %s, %s)\n", version, commit, runtime.Version())
		return exitOK
	case "run", "check":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("c", defaultConfig, "configuration `file`")
		if err := fs.Parse(args[1:]); err != nil {
			return exitBadConfig
		}
		if cmd == "check" {
			return check(*path, stdout, stderr)
		}
		return runGateway(*path, stderr)
	case "scan":
		return scan(args[1:], stdout, stderr)
	case "read":
		return read(args[1:], stdout, stderr)
	case "write":
		return write(args[1:], stdout, stderr)
	case "profiles":
		return profilesCmd(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "fieldgate: unknown command %q\n", cmd)
		usage(stderr)
		return exitBadConfig
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  fieldgate run [-c FILE]     run the gateway (default FILE `+defaultConfig+`)
  fieldgate check [-c FILE]   validate the configuration and print a summary
  fieldgate version           print version information
  fieldgate scan URL [--units 1-247] [--timeout 300ms]
                              probe a Modbus bus for units (tcp://, rtu://, rtu+tcp://;
                              rtu: --baud --parity --data-bits --stop-bits)
  fieldgate read URL --unit N --table T --address A [--count C]
                              read registers once, decoded in every type and byte order
  fieldgate read [-c FILE] ADAPTER[/POINT]
                              read configured points once
  fieldgate write [-c FILE] ADAPTER/POINT VALUE
                              write a point as a command would, then read it back
  fieldgate profiles [NAME]   list the built-in device profiles, or print one's points
`)
}

func check(path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		printConfigError(stderr, err)
		return exitBadConfig
	}
	fmt.Fprint(stdout, cfg.Summary())
	return exitOK
}

// printConfigError prints every configuration error on a line of its own.
func printConfigError(w io.Writer, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}
