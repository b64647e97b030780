package subject

import "testing"

// The cases include nats-server's own (sublist_test.go:
// TestSublistValidSubjects, TestSublistValidLiteralSubjects,
// TestSubjectIsLiteral); the rules were also cross-checked against
// IsValidSubject and IsValidPublishSubject on random input.
func TestValidSubject(t *testing.T) {
	tests := []struct {
		subject   string
		subscribe bool
		publish   bool
	}{
		{"foo", true, true},
		{"foo.bar", true, true},
		{"foo.bar.baz", true, true},
		{"", false, false},
		{".", false, false},
		{"..", false, false},
		{".foo", false, false},
		{"foo.", false, false},
		{"foo..bar", false, false},
		{"a..b", false, false},
		{"foo.bar.", false, false},

		{"*", true, false},
		{">", true, false},
		{"foo.*", true, false},
		{"foo.>", true, false},
		{"foo.bar.*", true, false},
		{"foo.bar.>", true, false},
		{"*.*", true, false},
		{"*.>", true, false},
		{"foo.*.bar", true, false},
		{"foo.*.>", true, false},
		{"*.foo", true, false},
		{">.bar", false, false},
		{"foo.>.bar", false, false},
		{"foo.>.>", false, false},
		{">.>", false, false},
		{">.*", false, false},
		{"foo.>.", false, false},
		{"foo.*.", false, false},
		{".>", false, false},

		// Wildcard characters inside a longer token are literal.
		{"foo*", true, true},
		{"foo**", true, true},
		{"foo.**", true, true},
		{"foo*bar", true, true},
		{"foo.*bar", true, true},
		{"foo*.bar", true, true},
		{"*bar", true, true},
		{"foo>", true, true},
		{"foo>>", true, true},
		{"foo.>>", true, true},
		{"foo>bar", true, true},
		{"foo.>bar", true, true},
		{"foo>.bar", true, true},
		{">bar", true, true},
		{">bar.baz", true, true},
		{"foo.>>.bar", true, true},
		{"**", true, true},
		{">>", true, true},
		{"*>", true, true},

		// Whitespace, alone or inside a token.
		{" ", false, false},
		{"foo bar", false, false},
		{"foo. bar", false, false},
		{"foo.bar ", false, false},
		{" foo", false, false},
		{"foo\tbar", false, false},
		{"\t", false, false},
		{"foo.\t", false, false},
		{"foo\nbar", false, false},
		{"foo\rbar", false, false},
		{"foo.\r", false, false},
		{"foo\fbar", false, false},
		{"\f", false, false},
		{"foo.* ", false, false},
		{"foo. >", false, false},

		// Not whitespace to nats-server: bytes are not interpreted.
		{"foo\vbar", true, true},
		{"foo\x00", true, true},
		{"foo.bar.baz.\x00", true, true},
		{"\xff\xfe", true, true},
		{"föö.bär", true, true},
		{"$JS.API.>", true, false},
		{"_INBOX.abc.*", true, false},
		{"$SYS.REQ.SERVER.PING", true, true},
	}
	for _, tt := range tests {
		if got := ValidSubscribe(tt.subject); got != tt.subscribe {
			t.Errorf("ValidSubscribe(%q) = %v, want %v", tt.subject, got, tt.subscribe)
		}
		if got := ValidSubscribe([]byte(tt.subject)); got != tt.subscribe {
			t.Errorf("ValidSubscribe([]byte(%q)) = %v, want %v", tt.subject, got, tt.subscribe)
		}
		if got := ValidPublish(tt.subject); got != tt.publish {
			t.Errorf("ValidPublish(%q) = %v, want %v", tt.subject, got, tt.publish)
		}
		if got := ValidPublish([]byte(tt.subject)); got != tt.publish {
			t.Errorf("ValidPublish([]byte(%q)) = %v, want %v", tt.subject, got, tt.publish)
		}
	}
}

func TestHasWildcard(t *testing.T) {
	tests := []struct {
		subject string
		want    bool
	}{
		{"foo", false},
		{"foo.bar", false},
		{"foo*.bar", false},
		{"foo.*bar", false},
		{"foo.>bar", false},
		{"", false},
		{"*", true},
		{">", true},
		{"foo.*", true},
		{"foo.>", true},
		{"foo.*.>", true},
		{"foo.*.bar", true},
		{"foo.bar.>", true},
		{"*.foo", true},
		// Not valid, but it has a wildcard token.
		{"foo..*", true},
		{">.foo", true},
	}
	for _, tt := range tests {
		if got := HasWildcard(tt.subject); got != tt.want {
			t.Errorf("HasWildcard(%q) = %v, want %v", tt.subject, got, tt.want)
		}
	}
}

func TestValidQueue(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"workers", true},
		{"q", true},
		{"a.b", true},
		{"a..b", true},
		{".", true},
		{"*", true},
		{">", true},
		{"foo.>", true},
		{SysQueue, true},
		{"grp-1_\x00", true},
		{"a\fb", true},
		{"", false},
		{" ", false},
		{"a b", false},
		{"a\tb", false},
		{"a\rb", false},
		{"a\nb", false},
		{"q ", false},
	}
	for _, tt := range tests {
		if got := ValidQueue(tt.name); got != tt.want {
			t.Errorf("ValidQueue(%q) = %v, want %v", tt.name, got, tt.want)
		}
		if got := ValidQueue([]byte(tt.name)); got != tt.want {
			t.Errorf("ValidQueue([]byte(%q)) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValidNoAlloc(t *testing.T) {
	b := []byte("devices.abc123.telemetry.temperature.celsius")
	allocs := testing.AllocsPerRun(100, func() {
		if !ValidPublish(b) || !ValidSubscribe(b) || !ValidQueue(b) || HasWildcard(b) {
			t.Fatal("unexpected result")
		}
	})
	if allocs != 0 {
		t.Errorf("validating bytes: %v allocs, want 0", allocs)
	}
}
