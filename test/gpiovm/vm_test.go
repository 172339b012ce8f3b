//go:build gpiovm

package gpiovm

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vmExitMarker is printed by the adapter's test binary, as init, before the
// exit code of its tests (adapters/gpio/sim_test.go).
const vmExitMarker = "GPIOVM-EXIT"

// result matches go test -v's verdict lines, top-level and subtests.
var result = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)

// TestVM boots FIELDGATE_GPIOVM_KERNEL (run.sh builds it) with the gpio
// adapter's tests as init and fails unless they all pass. Each test inside
// becomes a subtest here, so the host's verdict lists them.
func TestVM(t *testing.T) {
	kernel := os.Getenv("FIELDGATE_GPIOVM_KERNEL")
	if kernel == "" {
		t.Fatal("FIELDGATE_GPIOVM_KERNEL is not set: run test/gpiovm/run.sh, which builds the kernel and sets it")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "gpio.test")
	build := exec.Command("go", "test", "-c", "-tags", "gpiosim", "-o", bin, "github.com/fieldgate/fieldgate/adapters/gpio")
	// static, and for the plain x86-64 CPU qemu emulates
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test binary: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initramfs.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteInitramfs(f, exe); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// tsc=reliable: with no HPET or ACPI timer to check the TSC against, the
	// clocksource watchdog, judging by jiffies that lag on a loaded host,
	// would fall back to a 4 ms clock and blur the latencies measured.
	// Everything after "--" is init's argv.
	cmdline := "console=ttyS0 panic=-1 loglevel=3 tsc=reliable -- -test.v -test.timeout=8m"
	if run := os.Getenv("FIELDGATE_GPIOVM_RUN"); run != "" {
		cmdline += " -test.run=" + run
	}
	args := []string{"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-m", "256", "-smp", "1", "-display", "none", "-monitor", "none", "-serial", "stdio",
		"-net", "none", "-no-reboot"} // init reboots when done; -no-reboot makes qemu exit then
	if os.Getenv("FIELDGATE_GPIOVM_KVM") == "1" {
		args = append(args, "-enable-kvm", "-cpu", "host")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	qemu := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	qemu.WaitDelay = 5 * time.Second
	out, err := qemu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	qemu.Stderr = os.Stderr
	begin := time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}

	// The console is relayed line by line, indented so that the inner go
	// test's verdict lines are not mistaken for this one's.
	var (
		verdicts []string // "PASS TestEdges", in order, top-level tests only
		exit     = -1
		firstRun time.Duration
		done     time.Duration
	)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		os.Stdout.WriteString("    vm| " + line + "\n")
		if firstRun == 0 && strings.HasPrefix(line, "=== RUN") {
			firstRun = time.Since(begin)
		}
		if m := result.FindStringSubmatch(line); m != nil && !strings.Contains(m[2], "/") {
			verdicts = append(verdicts, m[1]+" "+m[2])
		}
		if rest, ok := strings.CutPrefix(line, vmExitMarker+" "); ok {
			exit, _ = strconv.Atoi(strings.TrimSpace(rest))
			done = time.Since(begin)
		}
	}
	waitErr := qemu.Wait() // qemu's status says nothing about the tests
	if exit < 0 {
		t.Fatalf("the VM reached no test result within %v (boot failure, crash or hang; qemu: %v)", time.Since(begin).Round(time.Millisecond), waitErr)
	}
	t.Logf("boot to first test %v, boot to result %v", firstRun.Round(time.Millisecond), done.Round(time.Millisecond))
	for _, v := range verdicts {
		verdict, name, _ := strings.Cut(v, " ")
		t.Run(name, func(t *testing.T) {
			switch verdict {
			case "FAIL":
				t.Error("failed in the VM (output above)")
			case "SKIP":
				if os.Getenv("CI") == "true" {
					t.Error("skipped in the VM: under CI every GPIO test must run")
				}
				t.Skip("skipped in the VM")
			}
		})
	}
	if len(verdicts) == 0 {
		t.Error("no test ran in the VM")
	}
	if exit != 0 {
		t.Errorf("the tests in the VM exited %d", exit)
	}
}
