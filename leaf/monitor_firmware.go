package leaf

import (
	"encoding/json"
	"slices"
	"sync"

	"github.com/canopy-iot/canopy/firmware"
)

// firmwareStates keeps the last status the agent reported for each
// firmware name, as it goes to the hub, for the monitor and the
// heartbeat: the agent keeps no state that the leaf could read.
type firmwareStates struct {
	subject string // fw.events.<device>: every status, sent or not
	mu      sync.Mutex
	last    map[string]firmware.State
}

// note remembers a status the agent published on subject.
func (s *firmwareStates) note(subject string, payload []byte) {
	if subject != s.subject {
		return
	}
	var st firmware.Status
	if json.Unmarshal(payload, &st) != nil || st.Name == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[string]firmware.State{}
	}
	s.last[st.Name] = st.State
}

func (s *firmwareStates) state(name string) firmware.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[name]
}

// firmwareStatus lists the firmware the agent manages, by name: what is
// installed and the state last reported. Nil when the agent is off.
func (n *Node) firmwareStatus() []FirmwareStatus {
	p := n.firmware
	if p == nil {
		return nil
	}
	names := make([]string, 0, len(n.cfg.Firmware.Installers))
	for name := range n.cfg.Firmware.Installers {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]FirmwareStatus, 0, len(names))
	for _, name := range names {
		f := FirmwareStatus{Name: name, State: string(p.fetcher.states.state(name))}
		if _, _, m, ok := p.agent.Installed(name); ok {
			f.Version = m.Version
			if f.State == "" {
				// Nothing reported since the start: what is installed
				// was applied.
				f.State = string(firmware.StateApplied)
			}
		}
		out = append(out, f)
	}
	return out
}
