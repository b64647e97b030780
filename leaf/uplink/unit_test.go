package uplink

import (
	"testing"
	"time"

	"github.com/canopy-iot/canopy/internal/config"
)

func TestSplitJSAck(t *testing.T) {
	cases := []struct {
		reply, subj, ack string
		ok               bool
	}{
		{"$JS.ACK.ORDERS.push.1.1.1.1795304650985116777.0@orders.new", "orders.new", "$JS.ACK.ORDERS.push.1.1.1.1795304650985116777.0", true},
		{"$JS.ACK._.imIIkDrm.ORDERS.pull.1.1.1.17953.1.x@orders.h", "orders.h", "$JS.ACK._.imIIkDrm.ORDERS.pull.1.1.1.17953.1.x", true},
		// A stream named with "@" keeps it: the separator comes after 8 dots.
		{"$JS.ACK.ST@X.c.1.1.1.179.0@a.b", "a.b", "$JS.ACK.ST@X.c.1.1.1.179.0", true},
		{"$JS.ACK.ORDERS.push.1.1.1.1795304650985116777.0@", "", "", false},
		{"$JS.ACK.ORDERS.push.1.1.1.1795304650985116777.0", "", "", false},
		{"_INBOX.abc@orders.new", "", "", false},
		{"$JS.ACK.a@b", "", "", false},
	}
	for _, c := range cases {
		subj, ack, ok := splitJSAck([]byte(c.reply))
		if ok != c.ok || string(subj) != c.subj || string(ack) != c.ack {
			t.Errorf("splitJSAck(%q) = %q %q %v, want %q %q %v", c.reply, subj, ack, ok, c.subj, c.ack, c.ok)
		}
	}
}

func TestBackoffGrowsToTheCeiling(t *testing.T) {
	u := &Uplink{cfg: Config{ReconnectMin: config.Duration(100 * time.Millisecond), ReconnectMax: config.Duration(2 * time.Second)}}
	prevFloor := time.Duration(0)
	for n := range 12 {
		floor := min(100*time.Millisecond<<n, 2*time.Second)
		for range 50 {
			d := u.backoff(n)
			if d < floor/2 || d > floor {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, floor/2, floor)
			}
		}
		if floor < prevFloor {
			t.Fatalf("backoff shrank at attempt %d", n)
		}
		prevFloor = floor
	}
}

func TestFilters(t *testing.T) {
	f := &filter{Allow: []string{"cmd.pi-001.>", "_INBOX.>"}, Deny: []string{"cmd.pi-001.secret"}}
	for subj, want := range map[string]bool{
		"cmd.pi-001.reboot": true, "cmd.pi-001.secret": false, "cmd.pi-002.reboot": false, "_INBOX.x.y": true,
	} {
		if got := f.allowsLiteral(subj); got != want {
			t.Errorf("allowsLiteral(%q) = %v", subj, got)
		}
	}
	for subj, want := range map[string]bool{
		"cmd.>": true, "cmd.pi-001.*": true, "cmd.pi-002.*": false, "telemetry.>": false, ">": true, "cmd.pi-001.secret": false,
	} {
		if got := f.allowsInterest(subj); got != want {
			t.Errorf("allowsInterest(%q) = %v", subj, got)
		}
	}
	s := newSendFilter(&filter{Allow: []string{"telemetry.>"}}, []string{"telemetry.kitchen.>"})
	for subj, want := range map[string]bool{
		"telemetry.kitchen.temp": true, "telemetry.hall.temp": false, "cmd.x": false,
		"$JS.ACK.S.C.1.1.1.1.0": true, "_R_.abc.x": true, "_GR_.aaaaaa.bbbbbb.telemetry.kitchen.t": true,
	} {
		for range 2 { // the second answer comes from the cache
			if got := s.allows([]byte(subj)); got != want {
				t.Errorf("send %q = %v", subj, got)
			}
		}
	}
}

func TestConfigValidation(t *testing.T) {
	c := Config{
		URLs: []string{"nats-leaf://hub:7422", "http://hub", "hub:7422"}, User: "u", Token: "t",
		Up: []string{"a..b"}, Proxy: "socks5://x", MaxPingsOut: -1,
	}.WithDefaults("dev")
	err := c.Validate()
	var got []string
	for _, e := range config.Flatten(err) {
		got = append(got, e.Error())
	}
	want := []string{
		`urls[1]: URL "http://hub": scheme must be nats-leaf, nats, tls, ws or wss`,
		`urls[2]: invalid URL "hub:7422" (want e.g. nats-leaf://hub:7422)`,
		`credentials: set one of credentials, nkey_seed_file, user, token`,
		`user: needs password or password_file`,
		`proxy: want http://[user:password@]host:port`,
		`up[0]: invalid subject "a..b"`,
		`max_pings_out: must be at least 1`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("problem %d: %q, want %q", i, got[i], want[i])
		}
	}
}
