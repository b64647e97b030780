package natsproto

import "strconv"

// The Append functions write one complete operation, CR LF included, to the
// end of dst and return the extended slice. They never allocate when dst has
// room. They do not check their input: subjects, replies, queue names and
// sids must be non-empty (where present) and free of spaces, tabs, CR and
// LF, or the peer will misread the stream (reference A.11). An empty reply
// or queue means none.

// AppendInfo writes "INFO <json>\r\n".
func AppendInfo(dst, json []byte) []byte {
	dst = append(dst, "INFO "...)
	dst = append(dst, json...)
	return append(dst, crlf...)
}

// AppendConnect writes "CONNECT <json>\r\n".
func AppendConnect(dst, json []byte) []byte {
	dst = append(dst, "CONNECT "...)
	dst = append(dst, json...)
	return append(dst, crlf...)
}

// AppendErr writes "-ERR '<text>'\r\n" (client.go: errProto).
func AppendErr(dst []byte, text string) []byte {
	dst = append(dst, "-ERR '"...)
	dst = append(dst, text...)
	return append(dst, "'\r\n"...)
}

// AppendPub writes "PUB <subject> [reply] <#payload>\r\n<payload>\r\n".
func AppendPub(dst, subject, reply, payload []byte) []byte {
	dst = append(dst, "PUB "...)
	dst = appendFields(dst, subject, reply)
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	return appendBody(dst, nil, payload)
}

// AppendHPub writes
// "HPUB <subject> [reply] <#header> <#total>\r\n<header><payload>\r\n".
func AppendHPub(dst, subject, reply, header, payload []byte) []byte {
	dst = append(dst, "HPUB "...)
	dst = appendFields(dst, subject, reply)
	dst = appendSizes(dst, header, payload)
	return appendBody(dst, header, payload)
}

// AppendSub writes "SUB <subject> [queue] <sid>\r\n".
func AppendSub(dst, subject, queue, sid []byte) []byte {
	dst = append(dst, "SUB "...)
	dst = appendFields(dst, subject, queue)
	dst = append(dst, sid...)
	return append(dst, crlf...)
}

// AppendUnsub writes "UNSUB <sid> [max]\r\n"; max ≤ 0 means none.
func AppendUnsub(dst, sid []byte, max int) []byte {
	dst = append(dst, "UNSUB "...)
	dst = append(dst, sid...)
	if max > 0 {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(max), 10)
	}
	return append(dst, crlf...)
}

// AppendMsg writes "MSG <subject> <sid> [reply] <#payload>\r\n<payload>\r\n".
func AppendMsg(dst, subject, sid, reply, payload []byte) []byte {
	dst = append(dst, "MSG "...)
	dst = appendFields(dst, subject, sid, reply)
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	return appendBody(dst, nil, payload)
}

// AppendHMsg writes the client form
// "HMSG <subject> <sid> [reply] <#header> <#total>\r\n<header><payload>\r\n".
func AppendHMsg(dst, subject, sid, reply, header, payload []byte) []byte {
	dst = append(dst, "HMSG "...)
	dst = appendFields(dst, subject, sid, reply)
	dst = appendSizes(dst, header, payload)
	return appendBody(dst, header, payload)
}

// AppendLSPlus writes "LS+ <subject>\r\n", or with a queue
// "LS+ <subject> <queue> <weight>\r\n". The weight is clamped to
// [1, MaxQueueWeight] as nats-server reads it; a queue LS+ without a weight
// would make the hub close the link.
func AppendLSPlus(dst, subject, queue []byte, weight int) []byte {
	dst = append(dst, "LS+ "...)
	dst = append(dst, subject...)
	if len(queue) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, queue...)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(min(max(weight, 1), MaxQueueWeight)), 10)
	}
	return append(dst, crlf...)
}

// AppendLSMinus writes "LS- <subject> [queue]\r\n". The hub matches it byte
// for byte against the LS+ it removes, so use the same subject and queue.
func AppendLSMinus(dst, subject, queue []byte) []byte {
	dst = append(dst, "LS- "...)
	dst = append(dst, subject...)
	if len(queue) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, queue...)
	}
	return append(dst, crlf...)
}

// AppendLMsg writes a leafnode message: "LMSG <subject> [reply] <#payload>"
// without queues, "LMSG <subject> + <reply> <queue>... <#payload>" or
// "LMSG <subject> | <queue>... <#payload>" with them, then the payload.
func AppendLMsg(dst, subject, reply []byte, queues [][]byte, payload []byte) []byte {
	dst = append(dst, "LMSG "...)
	dst = appendLeafRouting(dst, subject, reply, queues)
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	return appendBody(dst, nil, payload)
}

// AppendLHMsg writes the leafnode form of HMSG: as AppendLMsg, with
// "<#header> <#total>" in place of the size. nats-server sends a message
// whose header is empty as LMSG; callers should do the same.
func AppendLHMsg(dst, subject, reply []byte, queues [][]byte, header, payload []byte) []byte {
	dst = append(dst, "HMSG "...)
	dst = appendLeafRouting(dst, subject, reply, queues)
	dst = appendSizes(dst, header, payload)
	return appendBody(dst, header, payload)
}

// appendFields writes each non-empty field followed by a space.
func appendFields(dst []byte, fields ...[]byte) []byte {
	for _, f := range fields {
		if len(f) > 0 {
			dst = append(dst, f...)
			dst = append(dst, ' ')
		}
	}
	return dst
}

// appendLeafRouting writes the subject, reply and queue part of a leaf
// message, each followed by a space, as client.go: msgHeaderForRouteOrLeaf.
func appendLeafRouting(dst, subject, reply []byte, queues [][]byte) []byte {
	dst = append(dst, subject...)
	dst = append(dst, ' ')
	if len(queues) == 0 {
		return appendFields(dst, reply)
	}
	if len(reply) > 0 {
		dst = append(dst, "+ "...)
		dst = append(dst, reply...)
		dst = append(dst, ' ')
	} else {
		dst = append(dst, "| "...)
	}
	for _, q := range queues {
		dst = append(dst, q...)
		dst = append(dst, ' ')
	}
	return dst
}

func appendSizes(dst, header, payload []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(header)), 10)
	dst = append(dst, ' ')
	return strconv.AppendInt(dst, int64(len(header)+len(payload)), 10)
}

func appendBody(dst, header, payload []byte) []byte {
	dst = append(dst, crlf...)
	dst = append(dst, header...)
	dst = append(dst, payload...)
	return append(dst, crlf...)
}
