package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Fetcher is the agent's way to the hub, through the device's uplink.
// The leaf implements it on its local server's internal client; tests on
// a nats.go connection with the device's credentials.
type Fetcher interface {
	// Request publishes payload to subject with a reply subject under
	// the device's inbox (_INBOX.<device>.) and returns the reply's
	// header block (nil when it has none) and payload. A status reply
	// (e.g. "NATS/1.0 404 Message Not Found") is a reply, not an error:
	// the agent reads it from hdr. An error means no reply: the link is
	// down, nobody received the request, or ctx ended.
	Request(ctx context.Context, subject string, payload []byte) (hdr, data []byte, err error)
	// Publish sends payload to subject; an error means it was not sent.
	Publish(subject string, payload []byte) error
	// Connected receives a value after each (re)connection to the hub,
	// the first included. The agent reads its Desired again then and
	// resumes what a cut interrupted. Values may be dropped while one is
	// pending.
	Connected() <-chan struct{}
}

// replyStatus is the status of a reply's header block: code 0 for a
// plain "NATS/1.0" line (a stored message), else the code after it and
// its description, e.g. 404 "Message Not Found".
type replyStatus struct {
	code int
	desc string
}

// errHeader is a header block that does not start with NATS/1.0.
var errHeader = errors.New("unreadable reply header")

// parseStatus reads the status line of a header block. nil or empty is
// no header: a plain message.
func parseStatus(hdr []byte) (replyStatus, error) {
	if len(hdr) == 0 {
		return replyStatus{}, nil
	}
	line, _, _ := strings.Cut(string(hdr), "\n")
	line = strings.TrimSuffix(line, "\r")
	rest, ok := strings.CutPrefix(line, "NATS/1.0")
	if !ok || (rest != "" && rest[0] != ' ') {
		return replyStatus{}, fmt.Errorf("%w: status line %q", errHeader, clip(line))
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return replyStatus{}, nil
	}
	code, desc, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 || n > 999 {
		return replyStatus{}, fmt.Errorf("%w: status %q", errHeader, clip(code))
	}
	return replyStatus{code: n, desc: strings.TrimSpace(desc)}, nil
}

// headerValue is the value of the first header field key (matched
// without regard to case) in a header block, "" when absent.
func headerValue(hdr []byte, key string) string {
	lines := strings.Split(string(hdr), "\n")
	for _, l := range lines[1:] { // the first is the status line
		k, v, ok := strings.Cut(strings.TrimSuffix(l, "\r"), ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (s replyStatus) String() string {
	if s.desc == "" {
		return strconv.Itoa(s.code)
	}
	return strconv.Itoa(s.code) + " " + s.desc
}

// clip shortens outside text for an error message.
func clip(s string) string {
	const n = 80
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
