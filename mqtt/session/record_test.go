package session

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestRecordRoundTrip(t *testing.T) {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 2, Retain: true, Dup: true},
		TopicName:       "a/b",
		Payload:         []byte{0, 1, 2, 0xff},
		PacketID:        42,
		Origin:          "dev1",
		ProtocolVersion: 5,
		Created:         1700000000,
		Expiry:          1700000060,
		Properties: packets.Properties{
			ContentType:            "text/plain",
			ResponseTopic:          "re/ply",
			CorrelationData:        []byte("corr"),
			MessageExpiryInterval:  60,
			PayloadFormat:          1,
			PayloadFormatFlag:      true,
			SubscriptionIdentifier: []int{3},
			User:                   []packets.UserProperty{{Key: "k", Val: "v"}},
		},
	}
	rec := newMessageRecord(&pk)
	v, err := encode(rec, pk.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if v[0] != recordV1 {
		t.Errorf("record starts with %d, want version %d", v[0], recordV1)
	}
	var got messageRecord
	payload, err := decode(v, &got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload, pk.Payload) || !reflect.DeepEqual(got, rec) {
		t.Errorf("decoded %+v %x, want %+v %x", got, payload, rec, pk.Payload)
	}
	// What mochi rebuilds from it is the packet, but for what mochi's
	// storage type cannot carry (DUP, expiry, protocol version).
	sm := got.storage("sub", payload)
	back := sm.ToPacket()
	want := pk.Copy(true)
	want.Payload = pk.Payload
	want.FixedHeader.Dup = false
	want.Expiry, want.ProtocolVersion = 0, 0
	if !reflect.DeepEqual(back, want) {
		t.Errorf("packet back from the record:\n%+v\nwant\n%+v", back, want)
	}
	if !rec.expired(pk.Expiry+1) || rec.expired(pk.Expiry) {
		t.Error("expired() does not follow the record's expiry")
	}
}

func TestRecordVersion(t *testing.T) {
	v, err := encode(subRecord{Filter: "a/#", Qos: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"empty":         nil,
		"next version":  append([]byte{recordV1 + 1}, v[1:]...),
		"header length": {recordV1, 0xff, 0x01},
		"truncated":     v[:len(v)-1],
		"not JSON":      {recordV1, 2, 'x', 'y'},
	} {
		var r subRecord
		if _, err := decode(bad, &r); !errors.Is(err, errRecord) {
			t.Errorf("%s: decode = %v, want errRecord", name, err)
		}
	}
}

func TestSessionKeys(t *testing.T) {
	for _, id := range []string{"a", "dev/1", "dev/1/x", "", "x:y/", strings.Repeat("é", 40)} {
		for _, rest := range []string{keyClient, prefixSub + "a/#", prefixInflight + "00042"} {
			key := sessionPrefix(id) + rest
			gotID, gotRest, err := parseSessionKey(key)
			if err != nil || gotID != id || gotRest != rest {
				t.Errorf("parseSessionKey(%q) = %q, %q, %v", key, gotID, gotRest, err)
			}
		}
	}
	// One session's prefix is never another's.
	if strings.HasPrefix(sessionPrefix("dev/1/x"), sessionPrefix("dev/1")) {
		t.Error("session prefixes nest")
	}
	if got := inflightKey("c", 7); got != "s/1:c/i/00007" {
		t.Errorf("inflight key %q", got)
	}
	for _, bad := range []string{"s/", "s/x:a/c", "s/5:ab/c", "s/1:ab", "s/-1:/c", "s/01:a/c", "s/+1:a/c", "r/t"} {
		if _, _, err := parseSessionKey(bad); err == nil {
			t.Errorf("parseSessionKey(%q) accepted", bad)
		}
	}
}

// Records and keys come from the store file, which outlives releases:
// decoding must never panic.
func FuzzDecode(f *testing.F) {
	v, _ := encode(messageRecord{Type: packets.Publish, Topic: "t"}, []byte("p"))
	f.Add(v, "s/1:a/i/00001")
	f.Add([]byte{recordV1, 0}, "s/0:/c")
	f.Fuzz(func(t *testing.T, v []byte, key string) {
		var m messageRecord
		if p, err := decode(v, &m); err == nil && len(p) > len(v) {
			t.Fatal("payload longer than the record")
		}
		var c clientRecord
		_, _ = decode(v, &c)
		if id, rest, err := parseSessionKey(key); err == nil && sessionPrefix(id)+rest != key {
			t.Fatalf("key %q parsed as %q, %q", key, id, rest)
		}
	})
}
