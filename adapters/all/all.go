// Package all registers every adapter kind fieldgate ships. Importing it
// is how a program gets them; a new kind of hardware is one folder under
// adapters/ and one line here.
package all

import (
	_ "github.com/fieldgate/fieldgate/adapters/gpio"   // [[gpio]]
	_ "github.com/fieldgate/fieldgate/adapters/modbus" // [[modbus]]
	_ "github.com/fieldgate/fieldgate/adapters/serial" // [[serial]]
)
