package serial

import "time"

// Pace implements adapters.Pacer: in query mode a status follows every
// query, each bounded by the timeout, and a command's read-back adds one
// more; in line mode the device speaks when it will, so there is no pace
// (0).
func (a *Adapter) Pace() time.Duration {
	if !a.query {
		return 0
	}
	return 2*a.interval + 3*a.timeout
}
