// Command packaging turns the release binaries that `make release`
// cross-compiles into Debian packages, with nfpm as a library, and writes
// SHA256SUMS over the dist directory. It is a module of its own so that
// nfpm and its dependencies never reach the gateway's go.mod.
//
//	go run . -version V -commit C -maintainer M -dist DIR BINARY...
//
// Each BINARY is named fieldgate_<version>_linux_<arch>, arch one of
// debianArch's keys. Run it from this directory: nfpm.yaml names its files
// relative to it.
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
)

// debianArch maps the architecture suffix of a release binary to the
// Debian architecture of its package. GOARM=6 goes to armel, the Debian
// port that runs on ARMv6 (Pi Zero and 1); armhf needs ARMv7.
var debianArch = map[string]string{
	"amd64": "amd64",
	"arm64": "arm64",
	"armv7": "armhf",
	"armv6": "armel",
}

// maxSize bounds a release binary: the armv7 one must fit small boards.
var maxSize = map[string]int64{"armv7": 12 << 20}

const (
	// revision is the Debian revision of every package: the packaging
	// of one upstream version has never changed on its own.
	revision   = "1"
	nfpmConfig = "nfpm.yaml"
	manPage    = "debian/fieldgate.1"
	copyright  = "debian/copyright"
	sumsFile   = "SHA256SUMS"
)

func main() {
	var o options
	flag.StringVar(&o.version, "version", "", "release `version`, as git describe prints it")
	flag.StringVar(&o.commit, "commit", "", "the `commit` the binaries were built from")
	flag.StringVar(&o.maintainer, "maintainer", "", "the packages' Maintainer: `Name <address>`")
	flag.StringVar(&o.dist, "dist", "", "the `dir` the binaries are in and the packages go to")
	flag.Parse()
	o.binaries = flag.Args()
	o.date = sourceDate()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "packaging:", err)
		os.Exit(1)
	}
}

type options struct {
	version, commit, maintainer, dist string
	binaries                          []string
	date                              time.Time
}

func run(o options, out io.Writer) error {
	if o.version == "" || o.commit == "" || o.maintainer == "" || o.dist == "" || len(o.binaries) == 0 {
		return errors.New("need -version, -commit, -maintainer, -dist and at least one binary")
	}
	debVersion := debianVersion(o.version)
	licensed, err := licensedModules(copyright)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fieldgate-packaging")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	env := map[string]string{
		"VERSION":    debVersion,
		"RELEASE":    revision,
		"MAINTAINER": o.maintainer,
		"MANPAGE":    filepath.Join(tmp, "fieldgate.1.gz"),
		"CHANGELOG":  filepath.Join(tmp, "changelog.Debian.gz"),
	}
	page, err := os.ReadFile(manPage)
	if err != nil {
		return err
	}
	if err := writeGzip(env["MANPAGE"], page); err != nil {
		return err
	}
	if err := writeGzip(env["CHANGELOG"], changelog(debVersion+"-"+revision, o.version, o.commit, o.maintainer, o.date)); err != nil {
		return err
	}

	for _, bin := range o.binaries {
		arch, err := releaseArch(bin)
		if err != nil {
			return err
		}
		if err := checkBinary(bin, arch, licensed, out); err != nil {
			return err
		}
		if env["BINARY"], err = filepath.Abs(bin); err != nil {
			return err
		}
		env["ARCH"] = debianArch[arch]
		deb, err := buildDeb(env, o.date, o.dist)
		if err != nil {
			return fmt.Errorf("%s: %w", bin, err)
		}
		fi, err := os.Stat(deb)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-44s %s\n", filepath.Base(deb), mib(fi.Size()))
	}
	return writeSums(o.dist)
}

// releaseArch returns the architecture suffix of a release binary's name.
func releaseArch(bin string) (string, error) {
	_, arch, ok := strings.Cut(filepath.Base(bin), "_linux_")
	if _, known := debianArch[arch]; !ok || !known {
		return "", fmt.Errorf("%s: not a release binary (fieldgate_<version>_linux_<arch>, arch one of %v)", bin, slices.Sorted(maps.Keys(debianArch)))
	}
	return arch, nil
}

// checkBinary prints the binary's size and fails if it is over its limit
// or links a Go module that the copyright file does not name.
func checkBinary(bin, arch string, licensed map[string]bool, out io.Writer) error {
	fi, err := os.Stat(bin)
	if err != nil {
		return err
	}
	limit := ""
	if max, ok := maxSize[arch]; ok {
		if fi.Size() > max {
			return fmt.Errorf("%s is %s, over its limit of %s", bin, mib(fi.Size()), mib(max))
		}
		limit = " (limit " + mib(max) + ")"
	}
	fmt.Fprintf(out, "%-44s %s%s\n", filepath.Base(bin), mib(fi.Size()), limit)

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return err
	}
	var missing []string
	for _, dep := range info.Deps {
		if !licensed[dep.Path] {
			missing = append(missing, dep.Path)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s links modules that %s does not name: %s", bin, copyright, strings.Join(missing, ", "))
	}
	return nil
}

// licensedModules returns the module paths named by the copyright file's
// "Files: <module>/*" paragraphs.
func licensedModules(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	mods := map[string]bool{}
	for line := range strings.Lines(string(data)) {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "Files: "); ok {
			mods[strings.TrimSuffix(m, "/*")] = true
		}
	}
	return mods, nil
}

// buildDeb writes one .deb into dist and returns its path.
func buildDeb(env map[string]string, date time.Time, dist string) (string, error) {
	cfg, err := nfpm.ParseFileWithEnvMapping(nfpmConfig, func(k string) string { return env[k] })
	if err != nil {
		return "", err
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return "", err
	}
	info.MTime = date
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	target := filepath.Join(dist, pkg.ConventionalFileName(info))
	f, err := os.Create(target)
	if err != nil {
		return "", err
	}
	info.Target = target
	err = pkg.Package(info, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(target)
		return "", err
	}
	return target, nil
}

// releaseTag matches versions that start like a release (1.2, v1.2.3-4-gabc).
var releaseTag = regexp.MustCompile(`^v?[0-9]+\.[0-9]`)

// debianVersion turns what git describe prints into an upstream version
// dpkg orders sensibly: "v1.2.0" → "1.2.0", "v1.2.0-3-gabc" → "1.2.0-3-gabc"
// (after 1.2.0), and an untagged commit "8e3a860-dirty" → "0~git8e3a860-dirty",
// before any release, whatever digit the hash starts with.
func debianVersion(v string) string {
	if releaseTag.MatchString(v) {
		v = strings.TrimPrefix(v, "v")
	} else {
		v = "0~git" + v
	}
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune(".+~-", r) {
			return r
		}
		return '+'
	}, v)
}

// changelog is the Debian changelog of one build: the version it packages
// and where it came from, in the format of deb-changelog(5).
func changelog(debVersion, version, commit, maintainer string, date time.Time) []byte {
	return fmt.Appendf(nil, "fieldgate (%s) stable; urgency=medium\n\n  * fieldgate %s, built from commit %s.\n\n -- %s  %s\n",
		debVersion, version, commit, maintainer, date.UTC().Format(time.RFC1123Z))
}

// sourceDate is SOURCE_DATE_EPOCH (the Makefile sets the commit's time) so
// that a rebuild of one commit gives the same packages; now without it.
func sourceDate() time.Time {
	if s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		return time.Unix(s, 0).UTC()
	}
	return time.Now().UTC()
}

// writeGzip writes data compressed at the best level with no name or time
// in the header, as Debian wants for documentation.
func writeGzip(path string, data []byte) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// writeSums writes SHA256SUMS, in sha256sum's format, over every other
// file in dir.
func writeSums(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var sums strings.Builder
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == sumsFile {
			continue
		}
		sum, err := sha256File(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, e.Name())
	}
	return os.WriteFile(filepath.Join(dir, sumsFile), []byte(sums.String()), 0o644)
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
