package topic

// Wire-visible names and limits. They are fixed by MQTT and nats-server and
// must not change.
const (
	// Separator splits an MQTT topic into levels.
	Separator = "/"
	// SingleLevelWildcard is the filter level that matches one level.
	SingleLevelWildcard = "+"
	// MultiLevelWildcard is the last filter level, matching any number of
	// trailing levels, including none.
	MultiLevelWildcard = "#"
	// MaxLen is the longest MQTT string, topic names and filters included.
	MaxLen = 65535

	// natsSeparator splits a NATS subject into tokens.
	natsSeparator = "."
	// emptyLevel is the token an empty MQTT level becomes.
	emptyLevel = "/"
	// escapedDot is what a '.' inside an MQTT level becomes.
	escapedDot = "//"
	// reservedPrefix starts the subjects nats-server keeps its MQTT state
	// under (mqtt.go: mqttPrefix); it refuses filters that map into them.
	reservedPrefix = "$MQTT."
)
