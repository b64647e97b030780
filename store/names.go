package store

// Names that are part of the file format or of what operators see; they are
// the compatibility surface of this package. A store file looks like this:
//
//	meta/format            → layout.FormatVersion
//	logs/<log>/state       → layout.State
//	logs/<log>/msgs/<seq>  → layout record (append time, payload)
//	logs/<log>/acks/<name> → last sequence acknowledged by consumer <name>
//	tables/<table>/<key>   → value, as given to Table.Put
//
// The tables bucket is created with the first table, so files without
// tables are unchanged.
var (
	bucketMeta   = []byte("meta")
	keyFormat    = []byte("format")
	bucketLogs   = []byte("logs")
	keyState     = []byte("state")
	bucketMsgs   = []byte("msgs")
	bucketAcks   = []byte("acks")
	bucketTables = []byte("tables")
	reclaimTemp  = ".reclaim" // suffix of the file a reclaim copies into
)

// Limit names, as they appear in errors, logs and configuration.
const (
	nameMaxMsgs  = "max_msgs"
	nameMaxBytes = "max_bytes"
	nameMaxAge   = "max_age"
)

// maxNameLen bounds log, consumer and table names; they are bbolt keys.
const maxNameLen = 255
