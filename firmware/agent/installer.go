package agent

import (
	"context"
	"errors"

	"github.com/canopy-iot/canopy/firmware"
)

// Installer applies a verified artifact. The agent calls it only after
// the whole artifact matched its signed manifest.
type Installer interface {
	// Install applies the artifact staged at path (the installer may
	// move it). It returns nil once the artifact is applied, or an error
	// whose text becomes the status's reason. An installer that applies
	// by restarting the process returns ErrRestarting once the restart is
	// arranged: the agent reports "applying" and stops, and the next
	// process reports the outcome (see Resumer).
	Install(ctx context.Context, m firmware.Manifest, path string) error
}

// Resumer is an installer whose work may span a restart (the leaf
// replacing its own binary).
type Resumer interface {
	// Resume finishes an install begun by a previous process. healthy
	// returns nil once this process is fit to keep (its uplink is
	// connected and its checks pass) and is given until the installer's
	// deadline. Resume returns the status to report (applied, or
	// rolled-back with its reason) and true, or false when nothing was
	// pending. After a rollback Resume may not return: it can restore
	// the previous binary and end the process.
	Resume(ctx context.Context, healthy func(context.Context) error) (firmware.Status, bool)
}

// ErrRestarting is returned by an installer that applies by restarting.
var ErrRestarting = errors.New("restarting to apply the update")
