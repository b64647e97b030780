package leaf_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/canopy-iot/canopy/internal/testcert"
	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/mqtt"
)

// Logins from the users file, TLS client certificates, the anonymous
// policy and the ACL, over TCP, TLS and WebSocket.
func TestMQTTAuthentication(t *testing.T) {
	dir := t.TempDir()
	certs := testcert.Write(t, dir)
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	users := filepath.Join(dir, "mqtt-users")
	os.WriteFile(users, []byte("# sensors\nsensor-1:"+string(hash)+"\n"), 0o600)
	n, logs, _ := runLeaf(t, leafWithMQTT(func(c *leaf.Config) {
		c.MQTT.Anonymous = mqtt.AnonymousNever
		c.MQTT.UsersFile = users
		c.MQTT.TLS = mqtt.TLS{Listen: "127.0.0.1:0", CertFile: certs.Cert, KeyFile: certs.Key, ClientCAFile: certs.CA}
		c.MQTT.WebSocket = mqtt.WebSocket{Listen: "127.0.0.1:0"}
		c.MQTT.ACL = []mqtt.ACLEntry{
			{User: "sensor-1", Publish: []string{"sensors/sensor-1/#"}, Subscribe: []string{"cmd/sensor-1/#"}},
			{User: "localhost", Publish: []string{"#"}, Subscribe: []string{"#"}}, // the certificate's name
		}
	}))
	b := n.MQTT()
	login := func(user, password string) func(*paho.ClientOptions) {
		return func(o *paho.ClientOptions) { o.SetUsername(user).SetPassword(password) }
	}
	connectErr := func(addr string, mut func(*paho.ClientOptions)) error {
		o := paho.NewClientOptions().AddBroker(addr).SetClientID("probe").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		if mut != nil {
			mut(o)
		}
		c := paho.NewClient(o)
		err := wait(c.Connect())
		c.Disconnect(0)
		return err
	}

	if err := connectErr("tcp://"+b.Addr(), nil); err == nil {
		t.Fatal("anonymous client accepted with anonymous: never")
	}
	if err := connectErr("tcp://"+b.Addr(), login("sensor-1", "wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := logs.Contains(`msg="refused MQTT login" component=mqtt client=probe user=sensor-1`); err != nil {
		t.Fatal(err)
	}

	nc := natsConn(t, n)
	natsSub, _ := nc.SubscribeSync(">")
	nc.Flush()
	sensor := mqttClient(t, b.Addr(), "sensor-1", login("sensor-1", "s3cret"))
	publish(t, sensor, "sensors/sensor-2/temp", 0, false, "forged") // not its topic: dropped
	publish(t, sensor, "sensors/sensor-1/temp", 0, false, "21")
	if m, err := natsSub.NextMsg(5 * time.Second); err != nil || m.Subject != "sensors.sensor-1.temp" {
		t.Fatalf("NATS got %v %v, want only sensor-1's own topic", m, err)
	}
	tok := sensor.Subscribe("cmd/sensor-2/#", 1, nil)
	if err := wait(tok); err != nil {
		t.Fatal(err)
	}
	if codes := tok.(*paho.SubscribeToken).Result(); codes["cmd/sensor-2/#"] != 0x80 {
		t.Fatalf("subscription outside the ACL: result %v, want 0x80", codes)
	}
	subscribe(t, sensor, "cmd/sensor-1/#", 1, nil)

	// TLS with the client certificate: logged in as its common name.
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certs.CA)
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(certs.Cert, certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	withCert := func(o *paho.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost"})
	}
	admin := mqttClient(t, "tls://"+b.TLSAddr(), "admin", withCert)
	got := newCollector()
	subscribe(t, admin, "sensors/#", 1, got)
	// Without a certificate and a user name, TLS is not enough.
	if err := connectErr("tls://"+b.TLSAddr(), func(o *paho.ClientOptions) { o.SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "localhost"}) }); err == nil {
		t.Fatal("TLS client without certificate or login accepted")
	}

	// WebSocket with a login.
	ws := mqttClient(t, "ws://"+b.WebSocketAddr(), "ws-sensor", login("sensor-1", "s3cret"))
	publish(t, ws, "sensors/sensor-1/hum", 1, false, "40")
	if m := got.next(t); m.topic != "sensors/sensor-1/hum" || m.payload != "40" {
		t.Fatalf("over WebSocket then TLS: %+v", m)
	}
}
