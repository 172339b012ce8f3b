package config

import (
	"fmt"
	"strings"
)

// Error is one problem found in a config file, located as precisely as the
// file allows so an operator can go straight to it.
type Error struct {
	File string // the file as the caller named it
	Line int    // 1-based; 0 when the problem has no place (a missing table)
	Col  int    // 1-based byte column; 0 when unknown
	Key  string // what the problem is about: `modbus "boiler" point "temp"`, `upstream "cloud"`, `gateway`
	Msg  string
	Err  error // the underlying cause, if any (an os error for password_file)
}

// Error formats the problem as file:line:col: key: message.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause, so errors.Is(err, fs.ErrNotExist) works
// through a config error.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one config file, in file order. Load
// returns it (never an empty one) when the file is invalid.
type Errors []*Error

// Error prints one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As and errors.Is look at each problem.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}
