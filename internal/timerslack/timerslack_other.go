//go:build !linux

package timerslack

import (
	"errors"
	"time"
)

// Set reports errors.ErrUnsupported: timer slack is Linux's.
func Set(time.Duration) error { return errors.ErrUnsupported }
