package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/canopy-iot/canopy/internal/proctest"
	"github.com/canopy-iot/canopy/store"
)

// The leaf on the Raspberry Pi's architectures for real: cross-built for
// linux/arm (GOARM=6: Pi 1 and Zero) and linux/arm64, run under
// qemu-user. A nats.go client stores a message with js.Publish, an MQTT
// sensor publishes at QoS 1 to a NATS subscriber (and the stream), the
// health document arrives, the GPIO bridge finds no hardware and says so
// once; SIGTERM ends it with status 0, a second start reopens the store,
// and the store file the ARM binary wrote holds both messages.
//
// qemu-user-static must be installed (CI's .ci/run installs it); the
// emulator is invoked explicitly, so no binfmt registration is needed.
func TestIntegrationLeafOnARMUnderQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds and emulates canopy-leaf")
	}
	for _, target := range []struct{ name, goarch, goarm, qemu string }{
		{"arm6", "arm", "6", "qemu-arm-static"},
		{"arm64", "arm64", "", "qemu-aarch64-static"},
	} {
		t.Run(target.name, func(t *testing.T) {
			qemu, err := exec.LookPath(target.qemu)
			if err != nil {
				t.Skipf("%s not found (apt-get install qemu-user-static): %v", target.qemu, err)
			}
			began := time.Now()
			bin := crossBuild(t, target.goarch, target.goarm)
			t.Logf("linux/%s build: %v", target.goarch, time.Since(began).Round(time.Millisecond))

			dir := t.TempDir()
			dataDir := filepath.Join(dir, "data")
			cfg := filepath.Join(dir, "leaf.yaml")
			os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 1
server_name: qemu-pi
data_dir: %s
nats:
  listen: 127.0.0.1:0
mqtt:
  listen: 127.0.0.1:0
streams:
  - name: sensors
    subjects: ["sensors.>"]
health:
  interval: 1s
gpio:
  inputs: [{pin: GPIO17, pull: up}]
  outputs: [{pin: GPIO27}]
`, dataDir)), 0o644)

			began = time.Now()
			p := startEmulated(t, qemu, bin, dir, "run", "--config", cfg)
			t.Logf("start to ready under %s: %v", target.qemu, time.Since(began).Round(time.Millisecond))
			if n := strings.Count(p.Log(), "GPIO bridge off"); n != 1 {
				t.Errorf("GPIO without hardware said %d times, want once:\n%s", n, p.Log())
			}

			nc, err := nats.Connect(p.Ready[1])
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, err := nc.JetStream()
			if err != nil {
				t.Fatal(err)
			}
			ack, err := js.Publish("sensors.x", []byte("21.5"))
			if err != nil || ack.Stream != "sensors" || ack.Sequence != 1 {
				t.Fatalf("js.Publish: %+v %v", ack, err)
			}

			sub, _ := nc.SubscribeSync("sensors.>")
			healthSub, _ := nc.SubscribeSync("health")
			nc.Flush()
			mc := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.Ready[2]).SetClientID("sensor").SetConnectTimeout(10 * time.Second))
			if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("MQTT connect: %v", tok.Error())
			}
			defer mc.Disconnect(0)
			if tok := mc.Publish("sensors/kitchen/temp", 1, false, "22.0"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("MQTT publish: %v", tok.Error())
			}
			if m, err := sub.NextMsg(10 * time.Second); err != nil || m.Subject != "sensors.kitchen.temp" || string(m.Data) != "22.0" {
				t.Fatalf("MQTT to NATS: %v %v", m, err)
			}
			m, err := healthSub.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatalf("health document: %v", err)
			}
			var doc struct {
				Device  string   `json:"device"`
				Uptime  *float64 `json:"uptime_s"`
				Version string   `json:"version"`
			}
			if err := json.Unmarshal(m.Data, &doc); err != nil || doc.Device != "qemu-pi" || doc.Uptime == nil || doc.Version == "" {
				t.Fatalf("health document %s: %v", m.Data, err)
			}
			t.Logf("health document under %s: %s", target.qemu, m.Data)

			began = time.Now()
			stopEmulated(t, p)
			t.Logf("SIGTERM to exit: %v", time.Since(began).Round(time.Millisecond))

			// A second start reopens what the first one stored.
			began = time.Now()
			p = startEmulated(t, qemu, bin, dir, "run", "--config", cfg)
			t.Logf("restart to ready: %v", time.Since(began).Round(time.Millisecond))
			stopEmulated(t, p)

			st, err := store.Open(filepath.Join(dataDir, "streams.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			l, err := st.Log("sensors", store.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Stats().Msgs; got != 2 {
				t.Fatalf("the ARM leaf's store holds %d messages, want 2 (js.Publish and MQTT QoS 1)", got)
			}
		})
	}
}

// crossBuild compiles the leaf for linux/goarch.
func crossBuild(t *testing.T, goarch, goarm string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "canopy-leaf-"+goarch)
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build linux/%s: %v\n%s", goarch, err, out)
	}
	return bin
}

// startEmulated runs bin under qemu in dir and waits for "leaf ready"
// (Ready[1] is its NATS URL, Ready[2] its MQTT address).
func startEmulated(t *testing.T, qemu, bin, dir string, args ...string) *proctest.Process {
	t.Helper()
	cmd := exec.Command(qemu, append([]string{bin}, args...)...)
	cmd.Dir = dir
	return proctest.StartCommand(t, cmd, leafReadyMQTT, 60*time.Second)
}

// stopEmulated sends SIGTERM and expects exit status 0 within 10s
// (emulation is slow; natively the leaf has 5s).
func stopEmulated(t *testing.T, p *proctest.Process) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExit(t, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Log())
	}
}
