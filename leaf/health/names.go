package health

// DefaultSubject is the local subject of the health document. A leaf
// stream with subjects ["health"] keeps it and forwards it to the hub as
// telemetry.<device>.health (the stream's default upstream prefix
// telemetry.{device} put before it).
const DefaultSubject = "health"

// Files read, relative to the root.
const (
	fileThermal = "sys/class/thermal/thermal_zone0/temp"
	fileLoadavg = "proc/loadavg"
	fileMeminfo = "proc/meminfo"
	fileUptime  = "proc/uptime"
	// dirPlatform holds the firmware's flags on Raspberry Pi OS kernels,
	// as <bus>/<bus>:firmware/get_throttled (hexadecimal, without 0x):
	// soc/soc:firmware/get_throttled up to the Raspberry Pi 4.
	dirPlatform = "sys/devices/platform"
	// dirHwmon holds the hwmon devices; the one named hwmonVolt
	// (raspberrypi-hwmon, in mainline kernels too) has the under-voltage
	// alarm in0_lcrit_alarm.
	dirHwmon  = "sys/class/hwmon"
	hwmonVolt = "rpi_volt"
)
