package hubapp

import "github.com/spf13/cobra"

// rolloutCommands are `canopy-hub firmware rollout|status|...`.
func (p *provisioning) rolloutCommands() []*cobra.Command { return nil }
