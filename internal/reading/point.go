package reading

// Point describes one point of an adapter to those who present its readings
// or send it commands without knowing the hardware: the bridge's payloads,
// Home Assistant discovery, `fieldgate check`.
type Point struct {
	Adapter string
	Name    string
	// Type is the point's configured type: bool, int16, uint16, int32,
	// uint32, int64, uint64, float32, float64 or string (a GPIO line is a
	// bool, a pulse counter a uint64).
	Type     string
	Unit     string
	Writable bool
	// Scale and Offset turn the raw value the hardware holds into the
	// published one: value = raw*Scale + Offset. Points without scaling
	// have Scale 1.
	Scale, Offset float64
}
