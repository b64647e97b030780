package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kardianos/service"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/canopy-iot/canopy/systemd"
)

// Exit statuses of the status command, as systemctl status has them.
const (
	ExitNotRunning   = 3 // installed, not running
	ExitNotInstalled = 4
)

// exitStatus is a command's own exit status (status's 3 and 4), returned
// as an error for Main to exit with; the command has said why.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// errNotRoot is an install or uninstall of the running system without root.
var errNotRoot = errors.New("needs root")

// liveStatus asks the running process for its summary and prints it
// (Program.Status with the configuration loaded).
type liveStatus func(ctx context.Context, asJSON bool) error

// serviceManager installs and controls one of Canopy's binaries as a
// system service. On Linux with systemd (installed, running or not) and
// whenever root is set, it installs Canopy's own hardened unit from
// package systemd; elsewhere (launchd, Windows, other Linux init systems)
// kardianos/service's.
type serviceManager struct {
	name   string // the binary: canopy-leaf, canopy-hub
	config string // its default configuration file, which the unit names
	root   string // --root: another system's tree; "" is this system
	out    io.Writer
}

// serviceCommands are install, uninstall, start, stop, restart and
// status. With live, status first asks the running process what it is
// doing (reading the configuration as run does, to find it).
func serviceCommands(name, config string, stdout, stderr io.Writer, live liveStatus) []*cobra.Command {
	m := &serviceManager{name: name, config: config, out: stdout}
	cmd := func(use, short string, run func() error) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				var flags []string
				c.InheritedFlags().VisitAll(func(f *pflag.Flag) {
					if f.Changed {
						flags = append(flags, "--"+f.Name)
					}
				})
				if len(flags) > 0 && (use != "status" || live == nil || m.root != "") {
					return usageError{fmt.Errorf("%s takes no configuration flags (%s): the service reads %s", use, strings.Join(flags, ", "), config)}
				}
				return run()
			},
		}
	}
	var asJSON bool
	status := func() error {
		if live != nil && m.root == "" {
			err := live(context.Background(), asJSON)
			if err == nil {
				return nil
			}
			// No process to ask (or it could not be found): the service
			// manager's view is the answer, and the reason goes first.
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
		return m.status()
	}
	statusCmd := withRootFlag(m, cmd("status", "Print what the running "+name+" is doing; else whether its service is stopped or not installed (exit 0, 3 or 4)", status))
	if live != nil {
		statusCmd.Flags().BoolVar(&asJSON, "json", false, "print the running process's status document as JSON")
	}
	return []*cobra.Command{
		withRootFlag(m, cmd("install", "Install "+name+" as a system service (enabled, not started)", m.install)),
		withRootFlag(m, cmd("uninstall", "Stop and remove the system service (configuration and state stay)", m.uninstall)),
		cmd("start", "Start the system service", func() error { return m.control("start") }),
		cmd("stop", "Stop the system service", func() error { return m.control("stop") }),
		cmd("restart", "Restart the system service", func() error { return m.control("restart") }),
		statusCmd,
	}
}

// withRootFlag gives c the hidden --root flag.
func withRootFlag(m *serviceManager, c *cobra.Command) *cobra.Command {
	c.Flags().StringVar(&m.root, "root", "", "write under this directory, as the root of another system's tree (no root needed; nothing is run)")
	c.Flags().MarkHidden("root")
	return c
}

func (m *serviceManager) unit() string { return systemd.Unit(m.name) }

// systemd says whether Canopy's systemd unit is the way to install: with
// --root, or on Linux with systemd installed, whether it runs or not (in a
// container, a chroot, an image being built).
func (m *serviceManager) systemd() bool {
	if m.root != "" {
		return true
	}
	if runtime.GOOS != "linux" {
		return false
	}
	if systemd.Booted() {
		return true
	}
	_, err := exec.LookPath("systemctl")
	return err == nil
}

// needRoot refuses to change this system without root (Windows checks for
// itself).
func (m *serviceManager) needRoot(what string) error {
	if m.root != "" || runtime.GOOS == "windows" || os.Geteuid() == 0 {
		return nil
	}
	return fmt.Errorf("%s %w: run it with sudo", what, errNotRoot)
}

func (m *serviceManager) printf(format string, args ...any) { fmt.Fprintf(m.out, format, args...) }

// under places a path of the installed system under --root.
func (m *serviceManager) under(path string) string {
	if m.root == "" {
		return path
	}
	return filepath.Join(m.root, filepath.FromSlash(path))
}

// notBooted says why systemctl cannot act here.
func notBooted() string {
	pid1 := "unknown"
	if b, err := os.ReadFile("/proc/1/comm"); err == nil {
		pid1 = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("systemd is not running here (PID 1 is %s)", pid1)
}

func (m *serviceManager) install() error {
	if err := m.needRoot("install"); err != nil {
		return err
	}
	if !m.systemd() {
		return m.installOther()
	}
	opts := systemd.Options{}
	if m.root == "" {
		exe, err := executable(m.name)
		if err != nil {
			return err
		}
		opts.Executable = exe
	}
	written, err := systemd.Install(m.root, m.name, opts)
	for _, p := range written {
		m.printf("wrote %s\n", m.under(p))
	}
	if err != nil {
		return fmt.Errorf("install %s: %w", m.unit(), err)
	}
	created, err := writeDefaultConfig(m.under(m.config), m.name)
	if err != nil {
		return err
	}
	if created {
		m.printf("wrote %s (a default configuration: edit it, then `%s restart`)\n", m.under(m.config), m.name)
	} else {
		m.printf("kept %s\n", m.under(m.config))
	}
	commands := [][]string{
		{"systemd-sysusers", systemd.SysusersFile},
		{"systemd-tmpfiles", "--create", systemd.TmpfilesFile},
		{"systemctl", "daemon-reload"},
		{"systemctl", "enable", m.unit()},
	}
	switch {
	case m.root != "":
		m.printf("not run, because --root names another system's tree:\n")
		printCommands(m.out, commands)
		m.printf("When that system boots with systemd, it creates the user and directories itself; enable %s with\n  systemctl --root %s enable %s\n", m.unit(), m.root, m.unit())
	case !systemd.Booted():
		m.printf("not run, because %s:\n", notBooted())
		printCommands(m.out, commands)
		m.printf("Run them once systemd runs (a boot creates the user and directories by itself).\n")
	default:
		for _, c := range commands {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %w\n%s", strings.Join(c, " "), err, out)
			}
			m.printf("ran %s\n", strings.Join(c, " "))
		}
		m.printf("%s is installed and enabled; start it with `%s start`\n", m.name, m.name)
	}
	return nil
}

func printCommands(w io.Writer, commands [][]string) {
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n", strings.Join(c, " "))
	}
}

// hiddenDirs are where the hardened unit cannot see a binary
// (ProtectHome=yes, PrivateTmp=yes).
var hiddenDirs = []string{"/home/", "/root/", "/run/user/", "/tmp/", "/var/tmp/"}

// executable is the running binary, which the installed unit is to run.
func executable(name string) (string, error) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return "", fmt.Errorf("locate the running %s: %w", name, err)
	}
	for _, dir := range hiddenDirs {
		if strings.HasPrefix(exe, dir) {
			return "", fmt.Errorf("%s is %s, which the service cannot see (its unit has ProtectHome=yes and PrivateTmp=yes): copy it to /usr/local/bin or /usr/bin and install from there", name, exe)
		}
	}
	return exe, nil
}

// writeDefaultConfig writes a configuration to path unless one exists,
// atomically (a temporary file linked into place), and says whether it
// did.
func writeDefaultConfig(path, name string) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	content := fmt.Sprintf(`# %s's configuration, written by "%s install" because there was none.
# Every setting is optional; see docs/configuration.md. Relative paths are
# under the service's working directory, /var/lib/canopy/%s.
# Apply changes with "%s restart"; "systemctl reload %s" applies what
# can change live (see docs/operations.md).
version: 1
`, name, name, strings.TrimPrefix(name, "canopy-"), name, name)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return false, err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Chmod(0o640)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(f.Name(), path)
	}
	switch {
	case errors.Is(err, fs.ErrExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return true, nil
}

func (m *serviceManager) uninstall() error {
	if err := m.needRoot("uninstall"); err != nil {
		return err
	}
	if !m.systemd() {
		return m.uninstallOther()
	}
	live := m.root == "" && systemd.Booted()
	if p, ok := systemd.Installed(m.root, m.name); ok && p != systemd.UnitDir+"/"+m.unit() {
		return fmt.Errorf("%s comes from a package (%s): remove the package instead", m.unit(), m.under(p))
	}
	if _, ok := systemd.Installed(m.root, m.name); ok && live {
		if out, err := exec.Command("systemctl", "disable", "--now", m.unit()).CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl disable --now %s: %w\n%s", m.unit(), err, out)
		}
		m.printf("ran systemctl disable --now %s\n", m.unit())
	}
	removed, err := systemd.Uninstall(m.root, m.name)
	for _, p := range removed {
		m.printf("removed %s\n", m.under(p))
	}
	switch {
	case errors.Is(err, systemd.ErrNotInstalled):
		m.printf("%s is not installed: nothing to remove\n", m.name)
		return nil
	case err != nil:
		return fmt.Errorf("uninstall %s: %w", m.unit(), err)
	}
	if live {
		if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl daemon-reload: %w\n%s", err, out)
		}
		m.printf("ran systemctl daemon-reload\n")
	}
	m.printf("kept %s, %s and the canopy user\n", m.under(m.config), m.under("/var/lib/canopy/"+strings.TrimPrefix(m.name, "canopy-")))
	return nil
}

func (m *serviceManager) status() error {
	if !m.systemd() {
		return m.statusOther()
	}
	p, ok := systemd.Installed(m.root, m.name)
	switch {
	case !ok:
		m.printf("%s: not installed\n", m.name)
		return exitStatus(ExitNotInstalled)
	case m.root != "":
		m.printf("%s: installed (%s), not running here\n", m.name, m.under(p))
		return exitStatus(ExitNotRunning)
	case !systemd.Booted():
		m.printf("%s: stopped; %s\n", m.name, notBooted())
		return exitStatus(ExitNotRunning)
	}
	s, err := m.kardianos()
	if err != nil {
		return err
	}
	st, err := s.Status()
	switch {
	case err == nil && st == service.StatusRunning:
		m.printf("%s: running\n", m.name)
		return nil
	case err == nil || errors.Is(err, service.ErrNotInstalled):
		// kardianos asks systemctl, which may not have loaded the unit
		// yet: the unit file exists, so it is installed.
		m.printf("%s: stopped\n", m.name)
	default:
		m.printf("%s: stopped (%v)\n", m.name, err)
	}
	return exitStatus(ExitNotRunning)
}

// control starts, stops or restarts the service.
func (m *serviceManager) control(action string) error {
	if m.systemd() {
		if _, ok := systemd.Installed("", m.name); !ok {
			return fmt.Errorf("%s is not installed: run `%s install` first", m.unit(), m.name)
		}
		if !systemd.Booted() {
			return fmt.Errorf("cannot %s %s: %s", action, m.unit(), notBooted())
		}
	}
	s, err := m.kardianos()
	if err != nil {
		return err
	}
	switch action {
	case "start":
		err = s.Start()
	case "stop":
		err = s.Stop()
	default:
		err = s.Restart()
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", action, m.name, err)
	}
	m.printf("%s: %s\n", m.name, map[string]string{"start": "started", "stop": "stopped", "restart": "restarted"}[action])
	return nil
}

// kardianos returns the service as kardianos/service sees it: through
// systemctl where Canopy's unit is the way to install, through the
// platform's service manager elsewhere.
func (m *serviceManager) kardianos() (service.Service, error) {
	cfg := m.kardianosConfig()
	if m.systemd() {
		for _, sys := range service.AvailableSystems() {
			if sys.String() == "linux-systemd" {
				return sys.New(noProgram{}, cfg)
			}
		}
	}
	s, err := service.New(noProgram{}, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s as a service on %s: %w", m.name, runtime.GOOS, err)
	}
	return s, nil
}

func (m *serviceManager) kardianosConfig() *service.Config {
	return &service.Config{
		Name:             m.name,
		DisplayName:      "Canopy " + strings.TrimPrefix(m.name, "canopy-"),
		Description:      "Canopy edge messaging: " + m.name,
		Arguments:        []string{"run"},
		WorkingDirectory: stateDir(m.name),
	}
}

// stateDir is the service's working directory where kardianos installs it:
// a relative data directory (the default) lands there.
func stateDir(name string) string {
	short := strings.TrimPrefix(name, "canopy-")
	switch runtime.GOOS {
	case "windows":
		base := os.Getenv("ProgramData")
		if base == "" {
			base = `C:\ProgramData`
		}
		return filepath.Join(base, "Canopy", short)
	case "darwin":
		return filepath.Join("/Library/Application Support/Canopy", short)
	}
	return filepath.Join("/var/lib/canopy", short)
}

// noProgram is the program kardianos controls from the outside: install,
// start, stop and status never run it.
type noProgram struct{}

func (noProgram) Start(service.Service) error { return nil }
func (noProgram) Stop(service.Service) error  { return nil }

// installOther installs through kardianos (launchd, Windows, Linux without
// systemd): the service runs `<name> run` as root, from stateDir, without
// the hardening of Canopy's systemd unit.
func (m *serviceManager) installOther() error {
	s, err := m.kardianos()
	if err != nil {
		return err
	}
	dir := stateDir(m.name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := s.Install(); err != nil {
		return fmt.Errorf("install %s: %w", m.name, err)
	}
	m.printf("installed %s as a %s service, running `%s run` in %s; start it with `%s start`\n", m.name, service.Platform(), m.name, dir, m.name)
	return nil
}

func (m *serviceManager) uninstallOther() error {
	s, err := m.kardianos()
	if err != nil {
		return err
	}
	if st, err := s.Status(); errors.Is(err, service.ErrNotInstalled) {
		m.printf("%s is not installed: nothing to remove\n", m.name)
		return nil
	} else if err == nil && st == service.StatusRunning {
		if err := s.Stop(); err != nil {
			return fmt.Errorf("stop %s: %w", m.name, err)
		}
	}
	if err := s.Uninstall(); err != nil {
		return fmt.Errorf("uninstall %s: %w", m.name, err)
	}
	m.printf("uninstalled %s; kept its configuration and %s\n", m.name, stateDir(m.name))
	return nil
}

func (m *serviceManager) statusOther() error {
	s, err := m.kardianos()
	if err != nil {
		return err
	}
	st, err := s.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		m.printf("%s: not installed\n", m.name)
		return exitStatus(ExitNotInstalled)
	case err != nil:
		return fmt.Errorf("status of %s: %w", m.name, err)
	case st == service.StatusRunning:
		m.printf("%s: running\n", m.name)
		return nil
	}
	m.printf("%s: stopped\n", m.name)
	return exitStatus(ExitNotRunning)
}
