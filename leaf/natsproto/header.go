package natsproto

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// ErrBadHeader matches every error from ParseHeader.
var ErrBadHeader = errors.New("natsproto: bad header block")

// Header is a message header block (reference A.8):
//
//	NATS/1.0[ <status>[ <description>]]\r\n
//	<key>: <value>\r\n ...
//	\r\n
//
// Servers forward header blocks as opaque bytes; Header is for the few
// places that build or read one, such as the no-responders status.
type Header struct {
	// Status is the three-character status after the version, e.g. "503";
	// empty when the block has none.
	Status string
	// Description is the text after the status, e.g. "No Messages".
	Description string
	// Fields are the key-value lines in block order. A key may appear more
	// than once; keys keep their case and are compared exactly, as nats.go
	// does.
	Fields []HeaderField
}

// HeaderField is one "Key: Value" line.
type HeaderField struct {
	Key, Value string
}

// Add appends a field, keeping any earlier values of key.
func (h *Header) Add(key, value string) {
	h.Fields = append(h.Fields, HeaderField{key, value})
}

// Get returns the first value of key, or "".
func (h *Header) Get(key string) string {
	for _, f := range h.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return ""
}

// Values returns every value of key in block order.
func (h *Header) Values(key string) []string {
	var v []string
	for _, f := range h.Fields {
		if f.Key == key {
			v = append(v, f.Value)
		}
	}
	return v
}

// AppendHeader writes h as a header block, the blank line that ends it
// included. It does not check h: keys must not contain ':' and nothing may
// contain CR or LF. A status must be three characters without blanks.
func AppendHeader(dst []byte, h *Header) []byte {
	dst = append(dst, HeaderVersion...)
	if h.Status != "" {
		dst = append(dst, ' ')
		dst = append(dst, h.Status...)
		if h.Description != "" {
			dst = append(dst, ' ')
			dst = append(dst, h.Description...)
		}
	}
	dst = append(dst, crlf...)
	for _, f := range h.Fields {
		dst = append(dst, f.Key...)
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
		dst = append(dst, crlf...)
	}
	return append(dst, crlf...)
}

// AppendNoRespondersHeader writes the header block nats-server sends a
// requester whose request reached nobody (client.go:
// processInboundClientMsg): "NATS/1.0 503\r\nNats-Subject: <subject>\r\n\r\n".
// Send it as an HMSG with an empty payload on the requester's reply
// subscription.
func AppendNoRespondersHeader(dst, subject []byte) []byte {
	dst = append(dst, HeaderVersion+" "+StatusNoResponders+crlf+HeaderSubject+": "...)
	dst = append(dst, subject...)
	return append(dst, crlf+crlf...)
}

// ParseHeader reads a header block the way nats.go does (nats.go:
// DecodeHeadersMsg): the first line must start with NATS/1.0, lines end at
// LF with an optional CR, a field without ':' is an error, a field with an
// empty key is skipped, blanks after ':' are dropped, and a blank line ends
// the block; bytes after it are ignored. A zero-length header block means
// no header and is not valid input here.
func ParseHeader(block []byte) (Header, error) {
	var h Header
	line, rest, ok := headerLine(block)
	if !ok || !bytes.HasPrefix(line, []byte(HeaderVersion)) {
		return h, fmt.Errorf("%w: no %s line", ErrBadHeader, HeaderVersion)
	}
	if status := bytes.TrimSpace(line[len(HeaderVersion):]); len(status) > 0 {
		if len(status) < 3 {
			return h, fmt.Errorf("%w: status %s", ErrBadHeader, strconv.Quote(string(status)))
		}
		h.Status = string(status[:3])
		h.Description = string(bytes.TrimSpace(status[3:]))
	}
	for {
		line, rest, ok = headerLine(rest)
		if !ok {
			return h, fmt.Errorf("%w: no blank line at the end", ErrBadHeader)
		}
		if len(line) == 0 {
			return h, nil
		}
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			return h, fmt.Errorf("%w: field without ':'", ErrBadHeader)
		}
		if i == 0 {
			continue
		}
		v := line[i+1:]
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		h.Add(string(line[:i]), string(v))
	}
}

// headerLine splits off the first line, without its CR LF.
func headerLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line = b[:i]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, b[i+1:], true
}
