package bridge

import (
	"context"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Learning what the broker retains, so that discovery clears the configs
// of points removed while the gateway was down: its own record (held) only
// knows what this process published.
const (
	// haLearnQuiet is how long after the subscription is acknowledged,
	// with no retained config arriving, they are taken as all delivered.
	haLearnQuiet = 500 * time.Millisecond
	// haLearnMax bounds learning altogether, the subscription included.
	haLearnMax = 5 * time.Second
)

// learnRetained adds to held the discovery configs the broker retains for
// this gateway (homeassistant/+/<gateway id>/+/config) that held does not
// know, so that sync clears those no longer wanted. It subscribes, takes
// the retained messages until none has come for haLearnQuiet after the
// broker acknowledged the subscription, within haLearnMax, and
// unsubscribes. A broker that refuses the subscription leaves held as it
// is.
func (d *discovery) learnRetained(gatewayID string) {
	filter := haDiscoveryPrefix + "/+/" + gatewayID + "/+/config"
	var (
		mu       sync.Mutex
		retained = map[string]string{}
		arrived  = make(chan struct{}, 1)
	)
	// paho's router calls this in its own goroutine: it must not block.
	tok := d.conn.client.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		if !m.Retained() || len(m.Payload()) == 0 {
			return // a live copy of one being published says nothing of what is kept
		}
		mu.Lock()
		retained[m.Topic()] = string(m.Payload())
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
	})
	defer d.conn.client.Unsubscribe(filter)
	ctx, cancel := context.WithTimeout(d.ctx, haLearnMax)
	defer cancel()
	refused, err := awaitSuback(ctx, tok, haLearnMax)
	if err != nil {
		return // the link is gone, or stopping: the next connect learns again
	}
	if len(refused) > 0 {
		d.logger.Debug("homeassistant: the broker refused the subscription to the retained configs", "topic", filter)
		return
	}
	quiet := time.NewTimer(haLearnQuiet)
	defer quiet.Stop()
	for waiting := true; waiting; {
		select {
		case <-arrived:
			quiet.Reset(haLearnQuiet)
		case <-quiet.C:
			waiting = false
		case <-ctx.Done():
			waiting = false
		}
	}
	mu.Lock()
	defer mu.Unlock()
	learnt := 0
	for topic, payload := range retained {
		if _, known := d.held[topic]; !known {
			d.held[topic] = payload
			learnt++
		}
	}
	if learnt > 0 {
		d.logger.Debug("homeassistant: the broker retains configs this process did not publish", "configs", learnt)
	}
}
