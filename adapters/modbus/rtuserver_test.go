package modbus

import (
	"fmt"
	"time"

	"github.com/fieldgate/fieldgate/config"
)

// The RTU tests talk to test/rtuserver: Debian's python3-pymodbus serving
// several units on the device end of a socat PTY pair (or behind a socat
// TCP listener for rtu+tcp://).

var line8N1 = config.Line{BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 1}

// rtuConfig is an adapter config for unit on the bus at url, 9600 8N1.
func rtuConfig(url string, unit int, interval time.Duration, points ...PointConfig) *Config {
	cfg := deviceConfig(url, interval, points...)
	cfg.Name, cfg.UnitID, cfg.Line = fmt.Sprintf("unit%d", unit), unit, line8N1
	return cfg
}
