package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The local replay API: a client on the device reads what a stream holds
// (what has not yet been acknowledged by the hub, or not yet removed by
// the stream's limits) through requests on $CANOPY.STREAM.<name>.…:
//
//	INFO   → one JSON message: the stream's counters
//	READ   {"seq": N} or {"time": "RFC3339"}, and "max" (default 100,
//	       at most 1000) → one message per record, in order, on the
//	       reply subject, each with headers Canopy-Stream, Canopy-Seq,
//	       Canopy-Time and Canopy-Subject (plus the record's own
//	       headers), then a header-only message "NATS/1.0 204 EOB" with
//	       Canopy-Next-Seq: the sequence to ask from next time
//
// A bad request gets "NATS/1.0 400 Bad Request" with a Canopy-Error
// header.

// ReplayPrefix starts the subjects of the replay API.
const ReplayPrefix = "$CANOPY.STREAM."

// Replay limits.
const (
	defaultReplayMax = 100
	maxReplayMax     = 1000
	replayWorkers    = 4
)

type replayRequest struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Max  int       `json:"max"`
}

// StreamInfo is the answer to INFO.
type StreamInfo struct {
	Name      string   `json:"name"`
	Subjects  []string `json:"subjects"`
	Msgs      uint64   `json:"msgs"`
	Bytes     uint64   `json:"bytes"`
	FirstSeq  uint64   `json:"first_seq"`
	LastSeq   uint64   `json:"last_seq"`
	OldestAge string   `json:"oldest_age"`
	// Synced is the last sequence the hub acknowledged.
	Synced  uint64 `json:"synced"`
	Dropped uint64 `json:"dropped"`
	Refused uint64 `json:"refused"`
}

// serveReplay answers the replay API of s; requests run on a few workers,
// never on the publisher's goroutine.
func (s *Stream) serveReplay(subj, reply, payload []byte) {
	if len(reply) == 0 {
		return
	}
	op := strings.TrimPrefix(string(subj), ReplayPrefix+s.cfg.Name+".")
	r, p := string(reply), append([]byte(nil), payload...)
	select {
	case s.m.replaySlots <- struct{}{}:
		go func() {
			defer func() { <-s.m.replaySlots }()
			s.replay(op, r, p)
		}()
	default:
		s.replyError(r, "503 Busy", "too many replay requests at once")
	}
}

func (s *Stream) replay(op, reply string, payload []byte) {
	switch op {
	case "INFO":
		st := s.log.Stats()
		info := StreamInfo{
			Name: s.cfg.Name, Subjects: s.cfg.Subjects, Msgs: st.Msgs, Bytes: st.Bytes,
			FirstSeq: st.FirstSeq, LastSeq: st.LastSeq, OldestAge: st.OldestAge.String(),
			Synced: s.log.Acked(hubConsumer), Dropped: st.Dropped.Total(), Refused: st.Refused,
		}
		b, _ := json.Marshal(info)
		s.m.in.PublishLocal([]byte(reply), nil, nil, b)
	case "READ":
		if err := s.read(reply, payload); err != nil {
			s.replyError(reply, "400 Bad Request", err.Error())
		}
	default:
		s.replyError(reply, "400 Bad Request", fmt.Sprintf("unknown operation %q (want INFO or READ)", op))
	}
}

func (s *Stream) read(reply string, payload []byte) error {
	var req replayRequest
	if len(payload) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(payload)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return fmt.Errorf("request is not {\"seq\": N} or {\"time\": \"RFC3339\"} with an optional \"max\": %v", err)
		}
	}
	switch {
	case req.Max < 0:
		return errors.New("max must not be negative")
	case req.Max == 0:
		req.Max = defaultReplayMax
	case req.Max > maxReplayMax:
		req.Max = maxReplayMax
	}
	from := req.Seq
	if !req.Time.IsZero() {
		if req.Seq != 0 {
			return errors.New("give seq or time, not both")
		}
		seq, err := s.log.SeqAt(req.Time)
		if err != nil {
			return err
		}
		from = seq
	}
	last := uint64(0)
	err := s.log.Read(from, req.Max, func(seq uint64, at time.Time, data []byte) error {
		subj, hdr, body, err := decode(data)
		if err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		h := "NATS/1.0\r\nCanopy-Stream: " + s.cfg.Name + "\r\nCanopy-Seq: " + strconv.FormatUint(seq, 10) +
			"\r\nCanopy-Time: " + at.UTC().Format(time.RFC3339Nano) + "\r\nCanopy-Subject: " + string(subj) + "\r\n"
		if own, ok := strings.CutPrefix(string(hdr), "NATS/1.0\r\n"); ok {
			h += strings.TrimSuffix(own, "\r\n")
		}
		h += "\r\n"
		s.m.in.PublishLocal([]byte(reply), nil, []byte(h), body)
		last = seq
		return nil
	})
	if err != nil {
		return err
	}
	next := max(last+1, from)
	eob := "NATS/1.0 204 EOB\r\nCanopy-Next-Seq: " + strconv.FormatUint(next, 10) + "\r\n\r\n"
	s.m.in.PublishLocal([]byte(reply), nil, []byte(eob), nil)
	return nil
}

func (s *Stream) replyError(reply, status, msg string) {
	msg = strings.NewReplacer("\r", " ", "\n", " ").Replace(msg)
	s.m.in.PublishLocal([]byte(reply), nil, []byte("NATS/1.0 "+status+"\r\nCanopy-Error: "+msg+"\r\n\r\n"), nil)
}
