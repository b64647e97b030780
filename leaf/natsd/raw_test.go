package natsd_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/canopy-iot/canopy/leaf/natsd"
)

// Exact byte exchanges with a raw TCP client. Each step sends bytes and
// expects the exact reply; "" expects nothing before the next step's
// reply. close says the server must then close the connection.
type step struct {
	send, want string
}

func TestRawExchanges(t *testing.T) {
	cases := []struct {
		name   string
		steps  []step
		closed bool
	}{
		{name: "ping pong", steps: []step{{"CONNECT {\"verbose\":false}\r\nPING\r\n", "PONG\r\n"}, {"PING\r\nPING\r\n", "PONG\r\nPONG\r\n"}}},
		{name: "verbose acknowledges everything", steps: []step{
			{"CONNECT {}\r\n", "+OK\r\n"}, // verbose defaults to true
			{"SUB foo 1\r\n", "+OK\r\n"},
			{"PUB foo 2\r\nhi\r\n", "+OK\r\nMSG foo 1 2\r\nhi\r\n"},
			{"UNSUB 1\r\n", "+OK\r\n"},
			{"PING\r\n", "PONG\r\n"},
		}},
		{name: "pedantic refuses a wildcard publish", steps: []step{
			{"CONNECT {\"verbose\":false,\"pedantic\":true}\r\nPUB foo.* 1\r\nx\r\nPING\r\n", "-ERR 'Invalid Publish Subject'\r\nPONG\r\n"},
		}},
		{name: "non-pedantic accepts a wildcard publish", steps: []step{
			{"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB foo.* 1\r\nPUB foo.* 1\r\nx\r\nPING\r\n", "MSG foo.* 1 1\r\nx\r\nPONG\r\n"},
		}},
		{name: "invalid subscriptions", steps: []step{
			{"CONNECT {\"verbose\":false}\r\nSUB foo..bar 1\r\nSUB foo.>.bar 2\r\nSUB .foo 3\r\nPING\r\n",
				"-ERR 'Invalid Subject'\r\n-ERR 'Invalid Subject'\r\n-ERR 'Invalid Subject'\r\nPONG\r\n"},
		}},
		{name: "reserved queue", steps: []step{
			{"CONNECT {\"verbose\":false}\r\nSUB foo _sys_ 1\r\nPING\r\n", "-ERR 'Permissions Violation for Subscription to \"foo\" using queue \"_sys_\"'\r\nPONG\r\n"},
		}},
		{name: "reserved reply", steps: []step{
			{"CONNECT {\"verbose\":false}\r\nPUB foo $JS.ACK.x 1\r\nx\r\nPING\r\n", "-ERR 'Permissions Violation for Publish with Reply of \"$JS.ACK.x\"'\r\nPONG\r\n"},
		}},
		{name: "nats.go's odd spacing, lower case and bare LF", steps: []step{
			{"connect {\"verbose\":false}\nsub foo  1\r\npub\tfoo 2\nhi\r\nunsub 1 \r\npub foo 2\r\nhi\r\nping\n", "MSG foo 1 2\r\nhi\r\nPONG\r\n"},
		}},
		{name: "unsubscribe after max", steps: []step{
			{"CONNECT {\"verbose\":false}\r\nSUB bar q 3\r\nUNSUB 3 2\r\nPUB bar 1\r\na\r\nPUB bar 1\r\nb\r\nPUB bar 1\r\nc\r\nPING\r\n",
				"MSG bar 3 1\r\na\r\nMSG bar 3 1\r\nb\r\nPONG\r\n"},
		}},
		{name: "duplicate sid keeps the first subscription", steps: []step{
			{"CONNECT {\"verbose\":false}\r\nSUB a 1\r\nSUB b 1\r\nPUB a 1\r\nx\r\nPUB b 1\r\ny\r\nPING\r\n", "MSG a 1 1\r\nx\r\nPONG\r\n"},
		}},
		{name: "reply subject", steps: []step{
			{"CONNECT {\"verbose\":false}\r\nSUB svc 9\r\nPUB svc _INBOX.1 3\r\nreq\r\nPING\r\n", "MSG svc 9 _INBOX.1 3\r\nreq\r\nPONG\r\n"},
		}},
		{name: "headers", steps: []step{
			{"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB h 1\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n", "HMSG h 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPONG\r\n"},
		}},
		{name: "no responders", steps: []step{
			{"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nSUB _INBOX.x.* 2\r\nPUB nobody _INBOX.x.1 0\r\n\r\nPING\r\n",
				"HMSG _INBOX.x.1 2 38 38\r\nNATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n\r\nPONG\r\n"},
		}},
		{name: "HPUB without headers negotiated", steps: []step{
			{"CONNECT {\"verbose\":false}\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", ""},
		}, closed: true},
		{name: "unknown operation", steps: []step{{"CONNECT {\"verbose\":false}\r\nFOO bar\r\n", "-ERR 'Unknown Protocol Operation'\r\n"}}, closed: true},
		{name: "payload without CR LF", steps: []step{{"CONNECT {\"verbose\":false}\r\nPUB foo 2\r\nhiXX", "-ERR 'Unknown Protocol Operation'\r\n"}}, closed: true},
		{name: "oversized control line", steps: []step{{"CONNECT {\"verbose\":false}\r\nSUB " + strings.Repeat("a", 5000) + " 1\r\n", "-ERR 'maximum control line exceeded'\r\n"}}, closed: true},
		{name: "invalid protocol version", steps: []step{{"CONNECT {\"protocol\":2}\r\n", "-ERR 'invalid client protocol'\r\n"}}, closed: true},
		{name: "no responders without headers", steps: []step{{"CONNECT {\"no_responders\":true}\r\n", "-ERR 'no responders requires headers support'\r\n"}}, closed: true},
		{name: "account in CONNECT", steps: []step{{"CONNECT {\"account\":\"x\"}\r\n", "-ERR 'Authorization Violation'\r\n"}}, closed: true},
		{name: "bad PUB size", steps: []step{{"CONNECT {\"verbose\":false}\r\nPUB foo -1\r\n", ""}}, closed: true},
	}
	s := startServer(t, natsd.Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				r := dialRaw(t, s.Addr().String())
				r.handshake()
				for _, st := range c.steps {
					if oneByte {
						for i := range len(st.send) {
							// The server may close mid-line (a line
							// over the limit); what it sent before
							// is still checked below.
							if _, err := r.conn.Write([]byte(st.send[i : i+1])); err != nil && c.closed {
								break
							} else if err != nil {
								t.Fatal(err)
							}
						}
					} else {
						r.send(st.send)
					}
					if st.want != "" {
						r.expect(st.want)
					}
				}
				if c.closed {
					r.expectClosed()
				}
			}
		})
	}
}

func TestRawInfo(t *testing.T) {
	s := startServer(t, natsd.Config{MaxPayload: 2048})
	r := dialRaw(t, s.Addr().String())
	var info map[string]any
	if err := json.Unmarshal([]byte(r.handshake()), &info); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"server_name": "test-leaf", "version": natsd.AdvertisedVersion, "proto": 1.0, "headers": true, "max_payload": 2048.0, "client_ip": "127.0.0.1"} {
		if info[key] != want {
			t.Errorf("INFO %s = %v, want %v", key, info[key], want)
		}
	}
	if id, _ := info["server_id"].(string); len(id) != 56 || id[0] != 'N' {
		t.Errorf("server_id %q is not an NKey server key", id)
	}
	if id, _ := info["client_id"].(float64); id == 0 {
		t.Error("client_id is 0")
	}
	if _, ok := info["auth_required"]; ok {
		t.Error("auth_required set without authorization")
	}
}

func TestRawMaxConnections(t *testing.T) {
	s := startServer(t, natsd.Config{MaxConnections: 1})
	first := dialRaw(t, s.Addr().String())
	first.handshake()
	second := dialRaw(t, s.Addr().String())
	second.expect("-ERR 'maximum connections exceeded'\r\n")
	second.expectClosed()
}
