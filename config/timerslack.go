package config

import "time"

// TimerSlack is how late the kernel may end the gateway's timed sleeps:
// gateway.timer_slack when set, else AutoTimerSlack of the shortest poll
// interval of any adapter.
func (c *Config) TimerSlack() time.Duration {
	if c.Gateway.TimerSlack != nil {
		return c.Gateway.TimerSlack.D()
	}
	var shortest time.Duration
	for _, a := range c.Adapters {
		shortest = Sooner(shortest, a.Config.PollInterval())
	}
	return AutoTimerSlack(shortest)
}

// Sooner is the shorter of two poll intervals, where 0 is none.
func Sooner(a, b time.Duration) time.Duration {
	if a == 0 || b > 0 && b < a {
		return b
	}
	return a
}

// AutoTimerSlack is the timer slack for a gateway whose shortest poll
// interval is shortest (0: none polls): 1 % of it, so that no poll runs
// more than 1 % late, up to 1 ms; 0, the kernel's default of 50 µs, where
// 1 % is less than that.
func AutoTimerSlack(shortest time.Duration) time.Duration {
	const most, kernel = time.Millisecond, 50 * time.Microsecond
	switch slack := shortest / 100; {
	case shortest == 0 || slack > most:
		return most
	case slack < kernel:
		return 0
	default:
		return slack
	}
}

// maxTimerSlack bounds gateway.timer_slack: a longer slack would delay
// polls and timeouts noticeably, and is more likely "1s" typed for "1ms".
const maxTimerSlack = 100 * time.Millisecond
