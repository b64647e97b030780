package hub

// startRollouts starts the rollout controller in operator mode.
func (h *Hub) startRollouts() error { return nil }

// stopRollouts stops it and waits for it.
func (h *Hub) stopRollouts() {}
