// Command fieldgate-demo runs fieldgate against simulated peers: a Modbus TCP
// device (github.com/simonvetter/modbus's server) serving changing values and
// an embedded MQTT broker (github.com/mochi-mqtt/server/v2), and prints every
// message that flows through the broker. It lives outside the gateway's
// import graph so the production binary carries none of it.
//
//	fieldgate-demo [-gateway bin/fieldgate] [-c examples/demo.toml] [-selftest 60s]
//	fieldgate-demo pub TOPIC PAYLOAD
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fieldgate/fieldgate/test/modbussim"
)

// The addresses examples/demo.toml points at.
const (
	brokerAddr = "127.0.0.1:18830"
	deviceAddr = "127.0.0.1:15020"
	prefix     = "fieldgate/demo"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "pub" {
		if len(os.Args) != 4 {
			fmt.Fprintln(os.Stderr, "usage: fieldgate-demo pub TOPIC PAYLOAD")
			os.Exit(2)
		}
		if err := publish(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "fieldgate-demo:", err)
			os.Exit(1)
		}
		return
	}
	gateway := flag.String("gateway", "bin/fieldgate", "the fieldgate `binary` to run")
	cfg := flag.String("c", "examples/demo.toml", "the gateway's configuration `file`")
	selftest := flag.Duration("selftest", 0, "run unattended: check that readings flow and a command round-trips, then stop; fail after this `long`")
	flag.Parse()
	if err := run(*gateway, *cfg, *selftest); err != nil {
		fmt.Fprintln(os.Stderr, "fieldgate-demo:", err)
		os.Exit(1)
	}
}

func run(gatewayBin, cfgPath string, selftest time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bank := modbussim.NewBank()
	bank.SetHolding(10, uint16(215)) // setpoint 21.5 degC
	bank.SetHolding(20, stringRegs("FG-SIM-1", 8)...)
	dev, err := modbussim.Start(deviceAddr, bank)
	if err != nil {
		return err
	}
	defer dev.Stop()
	simCtx, stopSim := context.WithCancel(ctx)
	var sims sync.WaitGroup
	sims.Go(func() { simulate(simCtx, bank) })
	defer func() {
		stopSim()
		sims.Wait()
	}()

	broker := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err := broker.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	subscribed := &subscribeHook{c: make(chan struct{}, 1)}
	if err := broker.AddHook(subscribed, nil); err != nil {
		return err
	}
	if err := broker.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: brokerAddr})); err != nil {
		return err
	}
	if err := broker.Serve(); err != nil {
		return fmt.Errorf("broker on %s: %w", brokerAddr, err)
	}
	defer broker.Close()

	seen := make(chan packets.Packet, 1024)
	err = broker.Subscribe(prefix+"/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fmt.Printf("%-45s %s\n", pk.TopicName, pk.Payload)
		select {
		case seen <- pk:
		default:
		}
	})
	if err != nil {
		return err
	}
	fmt.Printf("demo: Modbus device on %s, MQTT broker on %s; Ctrl-C stops\n", deviceAddr, brokerAddr)

	gw := exec.Command(gatewayBin, "run", "-c", cfgPath)
	gw.Stdout, gw.Stderr = os.Stdout, os.Stderr
	if err := gw.Start(); err != nil {
		return fmt.Errorf("starting the gateway: %w", err)
	}
	exited := make(chan error, 1)
	gwCtx, gatewayGone := context.WithCancelCause(ctx)
	defer gatewayGone(nil)
	go func() {
		err := gw.Wait()
		exited <- err
		gatewayGone(fmt.Errorf("the gateway exited: %v", err))
	}()

	var testErr error
	if selftest > 0 {
		testErr = check(gwCtx, broker, subscribed.c, bank, seen, selftest)
	} else {
		select {
		case <-ctx.Done():
		case err := <-exited:
			return fmt.Errorf("the gateway exited: %w", err)
		}
	}

	// A clean stop: the gateway must exit 0 within its bounded shutdown.
	_ = gw.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil && testErr == nil {
			testErr = fmt.Errorf("the gateway's clean stop failed: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = gw.Process.Kill()
		if testErr == nil {
			testErr = errors.New("the gateway did not stop within 15 s of SIGTERM")
		}
	}
	if selftest > 0 && testErr == nil {
		fmt.Println("demo selftest: readings flowed and a command round-tripped")
	}
	return testErr
}

// simulate changes the device's values the way a small plant would.
func simulate(ctx context.Context, bank *modbussim.Bank) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s := now.Sub(start).Seconds()
			temp := 60 + 5*math.Sin(s/20)
			bits := math.Float32bits(float32(temp))
			bank.SetHolding(0, uint16(bits>>16), uint16(bits))
			bank.SetInput(0, uint16(int16(250+20*math.Sin(s/7)))) // pressure, 0.01 bar
			runtime := uint32(s)
			bank.SetInput(2, uint16(runtime>>16), uint16(runtime))
			bank.SetDiscrete(0, int(s)%40 >= 30) // an alarm 10 s in every 40
		}
	}
}

// subscribeHook tells, without blocking the broker, that a client subscribed.
type subscribeHook struct {
	mqtt.HookBase
	c chan struct{}
}

func (h *subscribeHook) ID() string { return "demo-subscribed" }

func (h *subscribeHook) Provides(b byte) bool { return b == mqtt.OnSubscribed }

func (h *subscribeHook) OnSubscribed(*mqtt.Client, packets.Packet, []byte) {
	select {
	case h.c <- struct{}{}:
	default:
	}
}

// check is the unattended demo: readings must arrive, and a command to the
// setpoint must come back ok and reach the device's register. The command
// waits for the gateway's command subscription, which its own connection
// may make after the first readings: a command published before it would
// reach nobody.
func check(ctx context.Context, broker *mqtt.Server, subscribed <-chan struct{}, bank *modbussim.Bank, seen <-chan packets.Packet, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	readings := 0
	wait := func(what string, ok func(packets.Packet) bool) error {
		for {
			select {
			case <-ctx.Done():
				if cause := context.Cause(ctx); !errors.Is(cause, context.DeadlineExceeded) {
					return fmt.Errorf("selftest: waiting for %s: %w", what, cause)
				}
				return fmt.Errorf("selftest: no %s within %v (%d readings seen)", what, limit, readings)
			case pk := <-seen:
				if strings.Count(pk.TopicName, "/") == 3 && strings.Contains(string(pk.Payload), `"seq":`) {
					readings++
				}
				if ok(pk) {
					return nil
				}
			}
		}
	}
	if err := wait("reading of supply_temp", func(pk packets.Packet) bool {
		return pk.TopicName == prefix+"/plant/supply_temp" && strings.Contains(string(pk.Payload), `"unit":"degC"`)
	}); err != nil {
		return err
	}
	setTopic := prefix + "/plant/setpoint/set"
	for len(broker.Topics.Subscribers(setTopic).Subscriptions) == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("selftest: the gateway did not subscribe to %s within %v: %w", setTopic, limit, context.Cause(ctx))
		case <-subscribed:
		}
	}
	cmd := fmt.Sprintf(`{"value":23.4,"id":"selftest","ts":%q}`, time.Now().UTC().Format(time.RFC3339))
	if err := broker.Publish(setTopic, []byte(cmd), false, 1); err != nil {
		return err
	}
	if err := wait("command result", func(pk packets.Packet) bool {
		return pk.TopicName == prefix+"/plant/setpoint/set/result"
	}); err != nil {
		return err
	}
	if got := bank.Holding(10, 1)[0]; got != 234 {
		return fmt.Errorf("selftest: setpoint register holds %d after the command, want 234", got)
	}
	return wait("read-back of the setpoint", func(pk packets.Packet) bool {
		return pk.TopicName == prefix+"/plant/setpoint" && strings.Contains(string(pk.Payload), `"value":23.4`)
	})
}

// publish sends one command to the demo broker and prints its result.
func publish(topic, payload string) error {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + brokerAddr).SetClientID("fieldgate-demo-pub"))
	if t := c.Connect(); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		return fmt.Errorf("connecting to the demo broker on %s: %v (is `make demo` running?)", brokerAddr, t.Error())
	}
	defer c.Disconnect(250)
	result := make(chan []byte, 1)
	if t := c.Subscribe(topic+"/result", 1, func(_ paho.Client, m paho.Message) {
		select {
		case result <- m.Payload():
		default:
		}
	}); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		return fmt.Errorf("subscribing to %s/result: %v", topic, t.Error())
	}
	if t := c.Publish(topic, 1, false, payload); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		return fmt.Errorf("publishing: %v", t.Error())
	}
	select {
	case r := <-result:
		fmt.Printf("%s/result %s\n", topic, r)
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("no result within 10 s (is the topic a writable point's …/set?)")
	}
}

// stringRegs packs s into n registers, two characters each, high byte first.
func stringRegs(s string, n int) []uint16 {
	b := make([]byte, 2*n)
	copy(b, s)
	regs := make([]uint16, n)
	for i := range regs {
		regs[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return regs
}
