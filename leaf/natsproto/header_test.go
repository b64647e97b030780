package natsproto

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block string
		want  Header
		err   bool
	}{
		{name: "empty block", block: "NATS/1.0\r\n\r\n", want: Header{}},
		{name: "no responders", block: "NATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n",
			want: Header{Status: "503", Fields: []HeaderField{{"Nats-Subject", "nobody"}}}},
		{name: "status only", block: "NATS/1.0 503\r\n\r\n", want: Header{Status: "503"}},
		{name: "description", block: "NATS/1.0 404 No Messages\r\n\r\n",
			want: Header{Status: "404", Description: "No Messages"}},
		{name: "heartbeat", block: "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0\r\n\r\n",
			want: Header{Status: "100", Description: "Idle Heartbeat", Fields: []HeaderField{
				{"Nats-Last-Consumer", "0"}, {"Nats-Last-Stream", "0"}}}},
		{name: "repeated keys keep order and case", block: "NATS/1.0\r\nK: 1\r\nk: 2\r\nK:3\r\nK:\t 4 \r\n\r\n",
			want: Header{Fields: []HeaderField{{"K", "1"}, {"k", "2"}, {"K", "3"}, {"K", "4 "}}}},
		{name: "value with colon", block: "NATS/1.0\r\nUrl: http://x:1/\r\n\r\n",
			want: Header{Fields: []HeaderField{{"Url", "http://x:1/"}}}},
		{name: "empty key skipped", block: "NATS/1.0\r\n: v\r\nA: b\r\n\r\n",
			want: Header{Fields: []HeaderField{{"A", "b"}}}},
		{name: "bare LF", block: "NATS/1.0\nA: b\n\n", want: Header{Fields: []HeaderField{{"A", "b"}}}},
		{name: "bytes after the block ignored", block: "NATS/1.0\r\n\r\ntrailing",
			want: Header{}},

		{name: "empty", block: "", err: true},
		{name: "wrong version", block: "NATS/2.0\r\n\r\n", err: true},
		{name: "short status", block: "NATS/1.0 50\r\n\r\n", err: true},
		{name: "no colon", block: "NATS/1.0\r\nfoo\r\n\r\n", err: true},
		{name: "unterminated", block: "NATS/1.0\r\nA: b\r\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHeader([]byte(tc.block))
			if tc.err {
				if !errors.Is(err, ErrBadHeader) {
					t.Fatalf("err = %v, want ErrBadHeader", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestHeaderValues(t *testing.T) {
	var h Header
	h.Add("K", "1")
	h.Add("X", "x")
	h.Add("K", "2")
	if got := h.Get("K"); got != "1" {
		t.Errorf("Get = %q", got)
	}
	if got := h.Get("k"); got != "" {
		t.Errorf("Get is not case-sensitive: %q", got)
	}
	if got := h.Values("K"); !reflect.DeepEqual(got, []string{"1", "2"}) {
		t.Errorf("Values = %q", got)
	}
	if got := h.Values("none"); got != nil {
		t.Errorf("Values(none) = %q", got)
	}
}

func TestAppendHeader(t *testing.T) {
	for _, tc := range []struct {
		h    Header
		want string
	}{
		{Header{}, "NATS/1.0\r\n\r\n"},
		{Header{Status: "503"}, "NATS/1.0 503\r\n\r\n"},
		{Header{Status: "408", Description: "Request Timeout"}, "NATS/1.0 408 Request Timeout\r\n\r\n"},
		{Header{Description: "ignored without a status"}, "NATS/1.0\r\n\r\n"},
		{Header{Fields: []HeaderField{{"A", "1"}, {"A", "2"}, {"B", ""}}}, "NATS/1.0\r\nA: 1\r\nA: 2\r\nB: \r\n\r\n"},
	} {
		got := AppendHeader(nil, &tc.h)
		if string(got) != tc.want {
			t.Errorf("AppendHeader(%+v) = %q, want %q", tc.h, got, tc.want)
		}
	}
	if got := AppendNoRespondersHeader(nil, []byte("nobody")); string(got) != "NATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n" {
		t.Errorf("no responders header %q", got)
	}
	h, err := ParseHeader(AppendNoRespondersHeader(nil, []byte("a.b")))
	if err != nil || h.Status != StatusNoResponders || h.Get(HeaderSubject) != "a.b" {
		t.Errorf("no responders header reads back as %+v, %v", h, err)
	}
}

// FuzzHeader checks that ParseHeader never panics and that what it accepts
// survives AppendHeader unchanged.
func FuzzHeader(f *testing.F) {
	for _, s := range []string{
		"NATS/1.0\r\n\r\n",
		"NATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n",
		"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\n\r\n",
		"NATS/1.0\r\nK: 1\r\nK: 2\r\n\r\n",
		"NATS/1.0\nA:b\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, block []byte) {
		h, err := ParseHeader(block)
		if err != nil {
			return
		}
		again, err := ParseHeader(AppendHeader(nil, &h))
		if err != nil {
			t.Fatalf("re-encoded header does not parse: %v", err)
		}
		if !reflect.DeepEqual(h, again) {
			t.Fatalf("round trip:\n%+v\n%+v", h, again)
		}
	})
}
