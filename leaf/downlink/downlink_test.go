package downlink

import "testing"

func TestStreamSeqFromAckSubjects(t *testing.T) {
	for _, c := range []struct {
		ack  string
		seq  uint64
		want bool
	}{
		{"$JS.ACK.COMMANDS.pi-001.1.42.7.1700000000000000000.0", 42, true},
		{"$JS.ACK.hub.ACCHASH.COMMANDS.pi-001.1.43.8.1700000000000000000.0.token", 43, true},
		{"$JS.ACK.COMMANDS.pi-001.1.x.7.1.0", 0, false},
		{"$JS.ACK.COMMANDS.pi-001.1.0.7.1.0", 0, false},
		{"$JS.ACK.short", 0, false},
	} {
		seq, ok := streamSeq(c.ack)
		if ok != c.want || (ok && seq != c.seq) {
			t.Errorf("streamSeq(%q) = %d, %v; want %d, %v", c.ack, seq, ok, c.seq, c.want)
		}
	}
}

func TestSplitAck(t *testing.T) {
	ack, subj, ok := splitAck("$JS.ACK.COMMANDS.pi.1.2.3.4.0@cmd.pi.reboot")
	if !ok || ack != "$JS.ACK.COMMANDS.pi.1.2.3.4.0" || subj != "cmd.pi.reboot" {
		t.Errorf("got %q %q %v", ack, subj, ok)
	}
	if _, _, ok := splitAck("_INBOX.x"); ok {
		t.Error("a non-ack reply was accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{Stream: "bad name", Domain: "a.b", Batch: 5000}).Validate(); err == nil {
		t.Fatal("bad config accepted")
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
}
