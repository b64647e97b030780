package hubapp

import "github.com/spf13/cobra"

// firmwareCommand is `canopy-hub firmware`: publish and list artifacts,
// plus the rollout commands (rolloutCommands).
func (p *provisioning) firmwareCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "firmware", Short: "Publish firmware, roll it out to devices and follow the rollouts"}
	cmd.AddCommand(p.rolloutCommands()...)
	return cmd
}
