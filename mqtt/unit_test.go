package mqtt

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/canopy-iot/canopy/internal/config"
)

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		rule, target string
		want         bool
	}{
		{"a/#", "a", true}, {"a/#", "a/b/c", true}, {"a/#", "a/#", true}, {"a/#", "b", false},
		{"a/+", "a/b", true}, {"a/+", "a/+", true}, {"a/+", "a/#", false}, {"a/+", "a/b/c", false},
		{"#", "anything/at/all", true}, {"a/b", "a/b", true}, {"a/b", "a/+", false}, {"a/b", "a", false},
		{"+/x", "y/x", true}, {"+/x", "y/z", false},
	} {
		if got := covers(strings.Split(c.rule, "/"), strings.Split(c.target, "/")); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.rule, c.target, got, c.want)
		}
	}
}

func TestSplitShare(t *testing.T) {
	for in, want := range map[string][2]string{
		"$share/g/a/b": {"a/b", "g"},
		"a/b":          {"a/b", ""},
		"$share/g":     {"", "g"},
	} {
		f, q := splitShare(in)
		if f != want[0] || q != want[1] {
			t.Errorf("splitShare(%q) = %q, %q; want %q", in, f, q, want)
		}
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	props := []packets.UserProperty{{Key: "unit", Val: "celsius"}, {Key: "unit", Val: "kelvin"}, {Key: "site", Val: "a b"}}
	hdr, err := appendHeader(nil, 1, props)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NATS/1.0\r\nNmqtt-Pub: 1\r\nunit: celsius\r\nunit: kelvin\r\nsite: a b\r\n\r\n"; string(hdr) != want {
		t.Fatalf("header %q, want %q", hdr, want)
	}
	qos, back := parseHeader(hdr)
	if qos != 1 || !slices.Equal(back, props) {
		t.Fatalf("parsed qos %d props %v", qos, back)
	}
	for _, bad := range []packets.UserProperty{{Key: "a:b", Val: "x"}, {Key: "", Val: "x"}, {Key: "a b", Val: "x"}, {Key: "k", Val: "x\r\ny: z"}} {
		if _, err := appendHeader(nil, 0, []packets.UserProperty{bad}); err == nil {
			t.Errorf("property %+v accepted", bad)
		}
	}
	// nats-server's bookkeeping and status lines are not properties.
	qos, back = parseHeader([]byte("NATS/1.0 503\r\nNmqtt-Pub:2\r\nNmqtt-Subject: x\r\nk: v\r\n\r\n"))
	if qos != 2 || len(back) != 1 || back[0].Key != "k" {
		t.Fatalf("parsed qos %d props %v", qos, back)
	}
	if qos, back = parseHeader([]byte("junk")); qos != -1 || back != nil {
		t.Fatalf("junk parsed as qos %d props %v", qos, back)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := Config{
		Listen:        "nowhere",
		TLS:           TLS{Listen: "0.0.0.0:8883", RequireClientCert: true},
		Anonymous:     "sometimes",
		ACL:           []ACLEntry{{Publish: []string{"a b"}, Subscribe: []string{"$share/g/x"}}},
		MaxPacketSize: 10,
		MaxInflight:   70000,
	}.WithDefaults()
	err := cfg.Validate()
	var got []string
	for _, e := range config.Flatten(err) {
		var ce *config.Error
		if errors.As(e, &ce) {
			got = append(got, ce.Path)
		}
	}
	want := []string{"listen", "tls", "tls.require_client_cert", "anonymous", "acl[0].user", "acl[0].publish[0]", "acl[0].subscribe[0]", "max_packet_size", "max_inflight"}
	if !slices.Equal(got, want) {
		t.Fatalf("problems at %v, want %v\n%v", got, want, err)
	}
	off := false
	if err := (Config{Enabled: &off, Listen: "bad"}).Validate(); err != nil {
		t.Fatalf("a disabled broker's settings were checked: %v", err)
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
