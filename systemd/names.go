package systemd

// Services are the names of Canopy's services: the binaries and, with
// ".service", their units.
var Services = []string{"canopy-leaf", "canopy-hub"}

// Where Install writes, relative to its root: the administrator's
// directories, which take precedence over a package's (/usr/lib/...).
const (
	UnitDir      = "/etc/systemd/system"
	SysusersFile = "/etc/sysusers.d/canopy.conf"
	TmpfilesFile = "/etc/tmpfiles.d/canopy.conf"
)

// PackageUnitDirs are where a package puts unit files; Installed looks
// there too.
var PackageUnitDirs = []string{"/usr/lib/systemd/system", "/lib/systemd/system"}

// Environment variables systemd sets for a service.
const (
	// EnvNotifySocket is the datagram socket sd_notify messages go to.
	EnvNotifySocket = "NOTIFY_SOCKET"
	// EnvWatchdogUsec is the watchdog timeout in microseconds.
	EnvWatchdogUsec = "WATCHDOG_USEC"
	// EnvWatchdogPID is the process the watchdog is for.
	EnvWatchdogPID = "WATCHDOG_PID"
)

// BootedDir exists when systemd is the running service manager (as
// sd_booted(3) checks).
const BootedDir = "/run/systemd/system"

// wantsDir is where `systemctl enable` links the units (their [Install]
// section says WantedBy=multi-user.target).
const wantsDir = UnitDir + "/multi-user.target.wants"
