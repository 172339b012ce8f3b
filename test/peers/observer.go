package peers

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Observer is a paho client subscribed to some topic filters, collecting
// what it receives. It reconnects and subscribes again after a broker
// restart; messages published while it is away are missed, unless it keeps
// a session (ObserveSession).
type Observer struct {
	*Inbox
	Client paho.Client
}

// Observe connects to brokerURL (mqtt://host:port), subscribes to filters at
// QoS 2 and returns once the broker has acknowledged the subscription. It
// disconnects when the test ends.
func Observe(t testing.TB, brokerURL string, filters ...string) *Observer {
	t.Helper()
	return observe(t, brokerURL, true, filters)
}

// ObserveSession is Observe with a persistent session: against a broker
// that keeps sessions across a restart (MosquittoOptions.Persistence) it
// also gets what the broker had accepted for it but not yet sent when it
// stopped.
func ObserveSession(t testing.TB, brokerURL string, filters ...string) *Observer {
	t.Helper()
	return observe(t, brokerURL, false, filters)
}

func observe(t testing.TB, brokerURL string, clean bool, filters []string) *Observer {
	t.Helper()
	o := &Observer{Inbox: newInbox()}
	subs := map[string]byte{}
	for _, f := range filters {
		subs[f] = 2
	}
	subscribed := make(chan error, 1)
	opts := paho.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID("observer-" + randomID()).
		SetCleanSession(clean).
		SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(250 * time.Millisecond).
		SetOnConnectHandler(func(c paho.Client) {
			tok := c.SubscribeMultiple(subs, func(_ paho.Client, m paho.Message) {
				o.Add(Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retained: m.Retained()})
			})
			tok.Wait()
			select {
			case subscribed <- tok.Error():
			default:
			}
		})
	o.Client = paho.NewClient(opts)
	o.Client.Connect()
	t.Cleanup(func() { o.Client.Disconnect(100) })
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("observer subscribe: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("observer not subscribed to %s within 10s", brokerURL)
	}
	return o
}

// Publish sends one message and waits until the broker confirms it.
func (o *Observer) Publish(t testing.TB, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := o.Client.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
