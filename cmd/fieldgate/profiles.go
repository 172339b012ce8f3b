package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/fieldgate/fieldgate/adapters/modbus"
	"github.com/fieldgate/fieldgate/adapters/modbus/profiles"
)

// profilesCmd is `fieldgate profiles [NAME]`: the built-in device profiles
// as a table, or one profile's points as [[modbus.point]] tables to paste
// under a [[modbus]] block and edit.
func profilesCmd(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		listProfiles(stdout)
		return exitOK
	case 1:
		return printProfile(args[0], stdout, stderr)
	}
	fmt.Fprintln(stderr, "usage: fieldgate profiles [NAME]")
	return exitBadConfig
}

func listProfiles(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMAKER\tMODEL\tKIND\tPOINTS")
	for _, p := range profiles.All() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", p.Name, p.Maker, shorten(p.Model, 44), p.Kind, p.Points)
	}
	tw.Flush()
	fmt.Fprint(w, "\nUse one with profile = \"NAME\" in a [[modbus]] block; `fieldgate profiles NAME` prints its points.\n")
}

// shorten cuts s to n characters, marking the cut.
func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// printProfile writes the profile's points as TOML, led by comments saying
// what it is and where its register map comes from.
func printProfile(name string, stdout, stderr io.Writer) int {
	pts, err := modbus.ProfilePoints(name)
	if err != nil {
		fmt.Fprintf(stderr, "fieldgate: %v\n", err)
		return exitBadConfig
	}
	p, _ := profiles.Lookup(name)
	var b strings.Builder
	comment(&b, fmt.Sprintf("%s: %s %s (%s), %d points.", p.Name, p.Maker, p.Model, p.Kind, len(pts)))
	comment(&b, "Source: "+p.Source)
	if p.Notes != "" {
		comment(&b, "Notes: "+p.Notes)
	}
	comment(&b, fmt.Sprintf(`Paste under a [[modbus]] block and edit, or name the profile there instead: profile = %q.`, p.Name))
	for _, pt := range pts {
		b.WriteString("\n  [[modbus.point]]\n")
		key := func(k, v string) { fmt.Fprintf(&b, "  %s = %s\n", k, v) }
		key("name", quote(pt.Name))
		key("table", quote(pt.Table))
		key("address", strconv.Itoa(pt.Address))
		if pt.Type != "" {
			key("type", quote(pt.Type))
		}
		if pt.ByteOrder != "" {
			key("byte_order", quote(pt.ByteOrder))
		}
		if pt.Scale != nil {
			key("scale", strconv.FormatFloat(*pt.Scale, 'g', -1, 64))
		}
		if pt.Offset != 0 {
			key("offset", strconv.FormatFloat(pt.Offset, 'g', -1, 64))
		}
		if pt.Bit != nil {
			key("bit", strconv.Itoa(*pt.Bit))
		}
		if pt.Length != 0 {
			key("length", strconv.Itoa(pt.Length))
		}
		if pt.Unit != "" {
			key("unit", quote(pt.Unit))
		}
		if pt.Writable {
			key("writable", "true")
		}
	}
	fmt.Fprint(stdout, b.String())
	return exitOK
}

// comment writes text as TOML comment lines of at most 78 columns.
func comment(b *strings.Builder, text string) {
	line := "#"
	for _, word := range strings.Fields(text) {
		if len(line)+1+len(word) > 78 && line != "#" {
			b.WriteString(line + "\n")
			line = "#"
		}
		line += " " + word
	}
	b.WriteString(line + "\n")
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
