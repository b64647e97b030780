package auth

// Credentials are the authentication fields of a client's CONNECT. The JSON
// tags are the CONNECT field names (nats.go: connectInfo), so a server can
// decode the CONNECT JSON into a struct that embeds Credentials.
//
// Pass, AuthToken and Sig are secrets or proofs: never log a Credentials
// value.
type Credentials struct {
	User      string `json:"user,omitempty"`
	Pass      string `json:"pass,omitempty"`
	AuthToken string `json:"auth_token,omitempty"`
	// NKey is the client's public user key and Sig its signature of the
	// nonce, base64 RawURL (standard base64 is accepted too).
	NKey string `json:"nkey,omitempty"`
	Sig  string `json:"sig,omitempty"`
	// JWT is decoded so that a client sending one is understood, but the
	// leaf does not run in operator mode and ignores it, as nats-server does
	// outside operator mode.
	JWT string `json:"jwt,omitempty"`
}

// empty reports whether the client sent no credentials at all.
func (c Credentials) empty() bool {
	return c.User == "" && c.Pass == "" && c.AuthToken == "" && c.NKey == "" && c.Sig == "" && c.JWT == ""
}
