package session

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A record is a version byte, the length of a JSON header as a uvarint,
// the header, then the payload (messages only) as raw bytes, so that
// payloads are not inflated by base64. A later version may change
// anything after the version byte; this release refuses other versions
// rather than misreading them. The JSON field names below are part of the
// format.
const recordV1 = 1

var errRecord = errors.New("malformed session record")

func encode(header any, payload []byte) ([]byte, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(h)+len(payload))
	b = append(b, recordV1)
	b = binary.AppendUvarint(b, uint64(len(h)))
	b = append(b, h...)
	return append(b, payload...), nil
}

// decode fills header from v and returns the payload, which aliases v.
func decode(v []byte, header any) (payload []byte, err error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty", errRecord)
	}
	if v[0] != recordV1 {
		return nil, fmt.Errorf("%w: version %d, this release reads %d", errRecord, v[0], recordV1)
	}
	n, l := binary.Uvarint(v[1:])
	if l <= 0 || n > uint64(len(v)-1-l) {
		return nil, fmt.Errorf("%w: header length", errRecord)
	}
	h := v[1+l : 1+l+int(n)]
	if err := json.Unmarshal(h, header); err != nil {
		return nil, fmt.Errorf("%w: %w", errRecord, err)
	}
	return v[1+l+int(n):], nil
}

type userProperty struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

func fromUser(u []packets.UserProperty) []userProperty {
	if len(u) == 0 {
		return nil
	}
	out := make([]userProperty, len(u))
	for i, p := range u {
		out[i] = userProperty{p.Key, p.Val}
	}
	return out
}

func toUser(u []userProperty) []packets.UserProperty {
	if len(u) == 0 {
		return nil
	}
	out := make([]packets.UserProperty, len(u))
	for i, p := range u {
		out[i] = packets.UserProperty{Key: p.Key, Val: p.Value}
	}
	return out
}

// clientRecord is what mochi needs to restore a disconnected session. The
// will is not kept: a restored session is disconnected, and mochi sends no
// will for it. Neither is authentication data: it is a credential.
type clientRecord struct {
	Listener               string         `json:"listener,omitempty"`
	Username               []byte         `json:"username,omitempty"`
	ProtocolVersion        byte           `json:"protocol_version"`
	Clean                  bool           `json:"clean,omitempty"`
	SessionExpiry          uint32         `json:"session_expiry,omitempty"`
	SessionExpiryFlag      bool           `json:"session_expiry_flag,omitempty"`
	ReceiveMaximum         uint16         `json:"receive_maximum,omitempty"`
	TopicAliasMaximum      uint16         `json:"topic_alias_maximum,omitempty"`
	MaximumPacketSize      uint32         `json:"maximum_packet_size,omitempty"`
	RequestProblemInfo     byte           `json:"request_problem_info,omitempty"`
	RequestProblemInfoFlag bool           `json:"request_problem_info_flag,omitempty"`
	RequestResponseInfo    byte           `json:"request_response_info,omitempty"`
	User                   []userProperty `json:"user,omitempty"`
}

func newClientRecord(cl *mqtt.Client, expiry uint32) clientRecord {
	p := &cl.Properties.Props
	return clientRecord{
		Listener:               cl.Net.Listener,
		Username:               cl.Properties.Username,
		ProtocolVersion:        cl.Properties.ProtocolVersion,
		Clean:                  cl.Properties.Clean,
		SessionExpiry:          expiry,
		SessionExpiryFlag:      p.SessionExpiryIntervalFlag,
		ReceiveMaximum:         p.ReceiveMaximum,
		TopicAliasMaximum:      p.TopicAliasMaximum,
		MaximumPacketSize:      p.MaximumPacketSize,
		RequestProblemInfo:     p.RequestProblemInfo,
		RequestProblemInfoFlag: p.RequestProblemInfoFlag,
		RequestResponseInfo:    p.RequestResponseInfo,
		User:                   fromUser(p.User),
	}
}

func (r clientRecord) storage(id string) storage.Client {
	return storage.Client{
		ID:              id,
		T:               storage.ClientKey,
		Listener:        r.Listener,
		Username:        r.Username,
		ProtocolVersion: r.ProtocolVersion,
		Clean:           r.Clean,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     r.SessionExpiry,
			SessionExpiryIntervalFlag: r.SessionExpiryFlag,
			ReceiveMaximum:            r.ReceiveMaximum,
			TopicAliasMaximum:         r.TopicAliasMaximum,
			MaximumPacketSize:         r.MaximumPacketSize,
			RequestProblemInfo:        r.RequestProblemInfo,
			RequestProblemInfoFlag:    r.RequestProblemInfoFlag,
			RequestResponseInfo:       r.RequestResponseInfo,
			User:                      toUser(r.User),
		},
	}
}

type subRecord struct {
	Filter            string `json:"filter"`
	Qos               byte   `json:"qos"`
	Identifier        int    `json:"identifier,omitempty"`
	NoLocal           bool   `json:"no_local,omitempty"`
	RetainAsPublished bool   `json:"retain_as_published,omitempty"`
	RetainHandling    byte   `json:"retain_handling,omitempty"`
}

func newSubRecord(sub packets.Subscription, qos byte) subRecord {
	return subRecord{
		Filter:            sub.Filter,
		Qos:               qos,
		Identifier:        sub.Identifier,
		NoLocal:           sub.NoLocal,
		RetainAsPublished: sub.RetainAsPublished,
		RetainHandling:    sub.RetainHandling,
	}
}

func (r subRecord) storage(id string) storage.Subscription {
	return storage.Subscription{
		ID:                subKey(id, r.Filter),
		T:                 storage.SubscriptionKey,
		Client:            id,
		Filter:            r.Filter,
		Qos:               r.Qos,
		Identifier:        r.Identifier,
		NoLocal:           r.NoLocal,
		RetainAsPublished: r.RetainAsPublished,
		RetainHandling:    r.RetainHandling,
	}
}

// messageRecord is a retained or inflight message; its payload follows
// the header. Type is the MQTT packet type: PUBLISH for retained messages
// and outbound deliveries, PUBREC or PUBREL for a QoS 2 exchange in
// progress. The DUP flag is not kept: mochi sets it on every resend.
type messageRecord struct {
	Type                   byte           `json:"type"`
	Topic                  string         `json:"topic,omitempty"`
	Qos                    byte           `json:"qos,omitempty"`
	Retain                 bool           `json:"retain,omitempty"`
	PacketID               uint16         `json:"packet_id,omitempty"`
	ReasonCode             byte           `json:"reason_code,omitempty"`
	Origin                 string         `json:"origin,omitempty"`
	ProtocolVersion        byte           `json:"protocol_version,omitempty"`
	Created                int64          `json:"created,omitempty"` // Unix seconds
	Expiry                 int64          `json:"expiry,omitempty"`  // Unix seconds; 0: none
	PayloadFormat          byte           `json:"payload_format,omitempty"`
	PayloadFormatFlag      bool           `json:"payload_format_flag,omitempty"`
	MessageExpiryInterval  uint32         `json:"message_expiry_interval,omitempty"`
	ContentType            string         `json:"content_type,omitempty"`
	ResponseTopic          string         `json:"response_topic,omitempty"`
	CorrelationData        []byte         `json:"correlation_data,omitempty"`
	SubscriptionIdentifier []int          `json:"subscription_identifier,omitempty"`
	User                   []userProperty `json:"user,omitempty"`
}

func newMessageRecord(pk *packets.Packet) messageRecord {
	p := &pk.Properties
	return messageRecord{
		Type:                   pk.FixedHeader.Type,
		Topic:                  pk.TopicName,
		Qos:                    pk.FixedHeader.Qos,
		Retain:                 pk.FixedHeader.Retain,
		PacketID:               pk.PacketID,
		ReasonCode:             pk.ReasonCode,
		Origin:                 pk.Origin,
		ProtocolVersion:        pk.ProtocolVersion,
		Created:                pk.Created,
		Expiry:                 max(pk.Expiry, 0), // mochi marks a delivery waiting for send quota with -1
		PayloadFormat:          p.PayloadFormat,
		PayloadFormatFlag:      p.PayloadFormatFlag,
		MessageExpiryInterval:  p.MessageExpiryInterval,
		ContentType:            p.ContentType,
		ResponseTopic:          p.ResponseTopic,
		CorrelationData:        p.CorrelationData,
		SubscriptionIdentifier: p.SubscriptionIdentifier,
		User:                   fromUser(p.User),
	}
}

// expired applies mochi's own rule: only MQTT 5 messages carry an expiry.
func (r messageRecord) expired(now int64) bool {
	return r.ProtocolVersion == 5 && r.Expiry > 0 && r.Expiry < now
}

// storage converts r for mochi, which rebuilds the packet with
// storage.Message.ToPacket.
func (r messageRecord) storage(client string, payload []byte) storage.Message {
	return storage.Message{
		Client:    client,
		Origin:    r.Origin,
		TopicName: r.Topic,
		Payload:   payload,
		PacketID:  r.PacketID,
		Created:   r.Created,
		FixedHeader: packets.FixedHeader{
			Type:   r.Type,
			Qos:    r.Qos,
			Retain: r.Retain,
		},
		Properties: storage.MessageProperties{
			PayloadFormat:          r.PayloadFormat,
			PayloadFormatFlag:      r.PayloadFormatFlag,
			MessageExpiryInterval:  r.MessageExpiryInterval,
			ContentType:            r.ContentType,
			ResponseTopic:          r.ResponseTopic,
			CorrelationData:        r.CorrelationData,
			SubscriptionIdentifier: r.SubscriptionIdentifier,
			User:                   toUser(r.User),
		},
	}
}
