package bench

// wirePoints is the device whose poll cycles each format carries.
const wirePoints = 200

// wire weighs, per format, the PUBLISH packets (fixed header, topic, packet
// id, payload) that carry readings to a subscriber, per reading. The
// compact format's retained dictionary, sent once per connection, is left
// out; so are acknowledgements and TCP/IP headers.
func (r *rig) wire() {
	for _, format := range formats("json", "value", "batch", "compact", "sparkplug") {
		_, addr := device(r.t, wirePoints)
		sub := subscribe(r.t, r.broker.URL(), format, 1)
		g := r.startGateway("wire-"+format, gwConfig{device: addr, points: wirePoints, interval: "100ms",
			broker: r.broker.URL(), qos: 1, format: format})
		sub.awaitReadings(r.t, int64(r.sz.wireCycles*wirePoints), r.sz.phaseLimit)
		g.stop()
		sub.client.Disconnect(50)
		name, perReading := "wire bytes per reading, "+format, float64(sub.wire.Load())/float64(sub.readings.Load())
		if format == "compact" {
			r.res.check(name, perReading, "B", "≤ 12", atMost(12))
		} else {
			r.res.add(name, perReading, "B", "", nil)
		}
	}
}
