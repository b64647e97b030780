package agent

import (
	"path/filepath"

	"github.com/canopy-iot/canopy/firmware"
)

// jsAPI is the prefix of the hub's JetStream API as devices address it:
// the hub refuses $JS.API.> and $KV.> from leaf connections and maps
// its devices' domain, "canopy", onto each tenant's JetStream (see
// hub/fleet.JetStreamDomain, which this must equal).
const jsAPI = "$JS.canopy.API."

// Subjects the agent uses, all allowed by a device's credentials (see
// hub/fleet.DevicePermissions). Changing one breaks devices in the field.
const (
	// chunkSubject is a direct get by sequence from the firmware Object
	// Store's stream: body {"seq":N}.
	chunkSubject = jsAPI + "DIRECT.GET.OBJ_" + firmware.Bucket
	// desiredGetPrefix + device is a direct get of the device's Desired:
	// empty body, the last value of its key.
	desiredGetPrefix = jsAPI + "DIRECT.GET.KV_" + firmware.DesiredBucket + ".$KV." + firmware.DesiredBucket + "."
	// statusPrefix + device stores the device's Status in the KV bucket
	// (a plain publish, mapped by the hub to $KV.fw-status.<device>).
	statusPrefix = jsAPI + "$KV." + firmware.StatusBucket + "."
)

func desiredGetSubject(device string) string { return desiredGetPrefix + device }
func statusSubject(device string) string     { return statusPrefix + device }
func eventsSubject(device string) string     { return firmware.EventsPrefix + device }

// Hook environment: what a FileInstaller's hook is told.
const (
	envName    = "CANOPY_FW_NAME"
	envVersion = "CANOPY_FW_VERSION"
	envPath    = "CANOPY_FW_PATH"
)

// HTTP paths of the LAN server: /firmware/<name> and
// /firmware/<name>/manifest.
const (
	httpPrefix       = "/firmware/"
	httpManifestPath = "/manifest"
)

// The layout under Config.Dir (see the package doc). Changing a name
// strands what devices have on disk. Per-name directories keep one
// firmware's versions apart from another's ("a" and "a-b" would share a
// "<name>-" prefix).
const (
	downloadDir   = "download"
	stagedDir     = "staged"
	installedDir  = "installed"
	partExt       = ".part"
	stateExt      = ".state"
	artifactFile  = "artifact"
	manifestFile  = "manifest.json"
	pendingFile   = "pending.json"
	failedFile    = "failed.json"
	previousExt   = ".previous" // FileInstaller: the artifact it replaced
	defaultSubdir = "firmware"  // under the leaf's data_dir
)

// layout names the agent's files for one directory.
type layout string

func (l layout) downloadDir(name string) string {
	return filepath.Join(string(l), downloadDir, name)
}

func (l layout) partPath(m firmware.Manifest) string {
	return filepath.Join(l.downloadDir(m.Name), m.Version+partExt)
}

func (l layout) statePath(m firmware.Manifest) string {
	return filepath.Join(l.downloadDir(m.Name), m.Version+stateExt)
}

func (l layout) stagedDir(name string) string {
	return filepath.Join(string(l), stagedDir, name)
}

func (l layout) stagedPath(m firmware.Manifest) string {
	return filepath.Join(l.stagedDir(m.Name), m.Version)
}

func (l layout) installedDir(name string) string {
	return filepath.Join(string(l), installedDir, name)
}

func (l layout) installedArtifact(name string) string {
	return filepath.Join(l.installedDir(name), artifactFile)
}

func (l layout) installedManifest(name string) string {
	return filepath.Join(l.installedDir(name), manifestFile)
}

func (l layout) pendingPath(name string) string {
	return filepath.Join(l.installedDir(name), pendingFile)
}

// failedPath records the last Desired that failed: one Desired at a time
// per device, whatever its firmware.
func (l layout) failedPath() string {
	return filepath.Join(string(l), failedFile)
}
