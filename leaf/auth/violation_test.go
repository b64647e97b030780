package auth

import "testing"

// The texts are nats-server's client.go Sprintf formats, written out.
func TestViolationTexts(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{PubViolation("foo.bar"), `Permissions Violation for Publish to "foo.bar"`},
		{PubViolation([]byte("foo.bar")), `Permissions Violation for Publish to "foo.bar"`},
		{PubViolation(`a"b\c`), `Permissions Violation for Publish to "a\"b\\c"`},
		{SubViolation("foo.>", ""), `Permissions Violation for Subscription to "foo.>"`},
		{SubViolation("foo.*", "workers"), `Permissions Violation for Subscription to "foo.*" using queue "workers"`},
		{SubViolation([]byte("foo"), []byte("_sys_")), `Permissions Violation for Subscription to "foo" using queue "_sys_"`},
		{SubViolation([]byte("foo"), nil), `Permissions Violation for Subscription to "foo"`},
		{ErrAuthorization.Error(), `Authorization Violation`},
		{(&Failure{Reason: "x"}).Error(), `Authorization Violation`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got  %s\nwant %s", tt.got, tt.want)
		}
	}
}
