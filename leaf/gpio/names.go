package gpio

// Subjects: the compatibility surface of the bridge. <pin> is the pin's
// name as configured (e.g. GPIO17).
const (
	// SubjectPrefix starts every pin's subject: hw.gpio.<pin> carries the
	// pin's level (inputs: debounced edges and the level at start;
	// outputs: the level at start and after each change).
	SubjectPrefix = "hw.gpio."
	// SetSuffix makes the command subject of an output,
	// hw.gpio.<pin>.set.
	SetSuffix = ".set"
	// GetSuffix makes the request subject that answers any configured
	// pin's current level, hw.gpio.<pin>.get.
	GetSuffix = ".get"
)

// Subject is the subject on which pin's level is published.
func Subject(pin string) string { return SubjectPrefix + pin }

// Levels as they appear in payloads.
const (
	levelHigh = "high"
	levelLow  = "low"
)
