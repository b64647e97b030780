package layout

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, seq := range []uint64{0, 1, 255, 256, 1<<63 + 5} {
		if got, err := Seq(Key(seq)); err != nil || got != seq {
			t.Errorf("Seq(Key(%d)) = %d, %v", seq, got, err)
		}
	}
	if bytes.Compare(Key(255), Key(256)) >= 0 {
		t.Error("keys do not sort in sequence order")
	}
	v := AppendRecord(nil, -42, []byte("payload"))
	at, data, err := ParseRecord(v)
	if err != nil || at != -42 || string(data) != "payload" {
		t.Errorf("ParseRecord = %d, %q, %v", at, data, err)
	}
	s := State{Last: 9, LastAt: 1e18, Msgs: 3, Bytes: 300, Acked: 6, Dropped: [NumDropped]uint64{1, 2, 3}, Refused: 4}
	if got, err := ParseState(MarshalState(s)); err != nil || got != s {
		t.Errorf("ParseState = %+v, %v", got, err)
	}
}

func TestCorrupt(t *testing.T) {
	for _, v := range [][]byte{nil, {1}, {2, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, _, err := ParseRecord(v); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ParseRecord(%x) = %v", v, err)
		}
	}
	if _, err := ParseState(MarshalState(State{})[1:]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short state: %v", err)
	}
	if _, err := Seq([]byte{1, 2}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short key: %v", err)
	}
}

// The decoders read bytes from a file that a crash or a bad disk may have
// mangled: they must reject, never panic, and accept only what re-encodes
// to the same bytes.
func FuzzParse(f *testing.F) {
	f.Add(AppendRecord(nil, 7, []byte("x")))
	f.Add(MarshalState(State{Last: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if at, data, err := ParseRecord(b); err == nil && !bytes.Equal(AppendRecord(nil, at, data), b) {
			t.Errorf("record %x does not round-trip", b)
		}
		if s, err := ParseState(b); err == nil && !bytes.Equal(MarshalState(s), b) {
			t.Errorf("state %x does not round-trip", b)
		}
		if v, err := ParseUint64(b); err == nil && !bytes.Equal(Uint64(v), b) {
			t.Errorf("uint64 %x does not round-trip", b)
		}
	})
}
