package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestIntegrationPackages builds packages once and checks them from every
// side: what dpkg-deb and rpm read in them, the binaries inside, the default
// configurations, install.sh into a scratch root, and (as root, where dpkg
// is) a real dpkg install, upgrade, remove and purge of the host's
// canopy-leaf .deb on this machine, which the test leaves as it found it.
//
// To stay quick it builds canopy-leaf for amd64, arm64 and armel (armhf is
// the same path as armel with GOARM=7) and canopy-hub for the host only;
// `go run ./packaging` builds all six.
func TestIntegrationPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: cross-builds the binaries")
	}
	host, ok := map[string]string{"amd64": "amd64", "arm64": "arm64"}[runtime.GOARCH]
	if !ok {
		t.Skipf("no canopy-hub for a %s host", runtime.GOARCH)
	}
	leafArches := []string{"amd64", "arm64", "armel"}
	dist := t.TempDir()
	// The command as a person runs it, and not in this process: under
	// -race, compressing the packages here would take minutes.
	for _, args := range [][]string{
		{"-only", "leaf", "-arch", strings.Join(leafArches, ",")},
		{"-only", "hub", "-arch", host},
	} {
		cmd := exec.Command("go", append([]string{"run", "./packaging", "-out", dist}, args...)...)
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		t.Logf("go run ./packaging %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatal(err)
		}
	}
	version := strings.TrimSpace(string(tarFile(t, filepath.Join(dist, TarballName("canopy-leaf", host)), "VERSION")))
	built := map[string][]string{"canopy-leaf": leafArches, "canopy-hub": {host}}

	t.Run("artefacts", func(t *testing.T) { testArtefacts(t, dist, version, built) })
	t.Run("binaries", func(t *testing.T) { testBinaries(t, dist, version, built) })
	t.Run("default configurations", func(t *testing.T) { testDefaultConfigs(t, dist, host) })
	t.Run("dpkg-deb", func(t *testing.T) { testDebs(t, dist, version, built) })
	t.Run("rpm", func(t *testing.T) { testRPMs(t, dist, version, built) })
	t.Run("install.sh", func(t *testing.T) { testInstallScript(t, dist, host) })
	t.Run("dpkg install, upgrade, remove, purge", func(t *testing.T) {
		testDpkgInstall(t, filepath.Join(dist, "canopy-leaf_"+version+"_"+host+".deb"), version)
	})
}

func debName(name, version, debArch string) string {
	return name + "_" + version + "_" + debArch + ".deb"
}

func rpmName(name, version, debArch string) string {
	a, _ := archNamed(debArch)
	return name + "-" + version + "-1." + a.RPM + ".rpm"
}

func testArtefacts(t *testing.T, dist, version string, built map[string][]string) {
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for name, arches := range built {
		for _, a := range arches {
			tarball := TarballName(name, a)
			for _, f := range []string{debName(name, version, a), rpmName(name, version, a), tarball} {
				data, err := os.ReadFile(filepath.Join(dist, f))
				if err != nil {
					t.Error(err)
					continue
				}
				sum := sha256.Sum256(data)
				if line := hex.EncodeToString(sum[:]) + "  " + f + "\n"; !bytes.Contains(sums, []byte(line)) {
					t.Errorf("SHA256SUMS lacks %q", line)
				}
			}
			data, _ := os.ReadFile(filepath.Join(dist, tarball))
			sum := sha256.Sum256(data)
			sidecar, err := os.ReadFile(filepath.Join(dist, tarball+".sha256"))
			if want := hex.EncodeToString(sum[:]) + "  " + tarball + "\n"; err != nil || string(sidecar) != want {
				t.Errorf("%s.sha256 = %q, %v; want %q", tarball, sidecar, err, want)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dist, "install.sh")); err != nil {
		t.Error(err)
	}
}

// testBinaries reads how each packaged binary was built.
func testBinaries(t *testing.T, dist, version string, built map[string][]string) {
	for name, arches := range built {
		for _, a := range arches {
			want, _ := archNamed(a)
			bin := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(bin, tarFile(t, filepath.Join(dist, TarballName(name, a)), name), 0o755); err != nil {
				t.Fatal(err)
			}
			info, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatalf("%s %s: %v", name, a, err)
			}
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			checks := map[string]string{"GOOS": "linux", "GOARCH": want.GOARCH, "CGO_ENABLED": "0", "-trimpath": "true"}
			if want.GOARM != "" {
				checks["GOARM"] = want.GOARM
			}
			for k, v := range checks {
				if settings[k] != v {
					t.Errorf("%s %s: built with %s=%q, want %q", name, a, k, settings[k], v)
				}
			}
			// -trimpath keeps -ldflags out of the build information: look
			// for the version stamped into the binary itself.
			if data, _ := os.ReadFile(bin); !bytes.Contains(data, []byte(version)) {
				t.Errorf("%s %s: version %s not stamped in", name, a, version)
			}
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			if f.Section(".symtab") != nil {
				t.Errorf("%s %s: not stripped", name, a)
			}
			if f.Section(".interp") != nil {
				t.Errorf("%s %s: dynamically linked", name, a)
			}
			f.Close()
		}
	}
}

// testDefaultConfigs runs the host's packaged binaries on their packaged
// default configurations, with the paths under /etc/canopy and
// /var/lib/canopy moved into a scratch directory. For the hub it first
// makes what postinst makes on a first install: the certificates and the
// key directory the configuration names.
func testDefaultConfigs(t *testing.T, dist, host string) {
	for _, p := range products {
		tarball := filepath.Join(dist, TarballName(p.Name, host))
		dir := t.TempDir()
		bin, cfg := filepath.Join(dir, p.Name), filepath.Join(dir, p.Short+".yaml")
		if err := os.WriteFile(bin, tarFile(t, tarball, p.Name), 0o755); err != nil {
			t.Fatal(err)
		}
		moved := strings.NewReplacer("/etc/canopy/", dir+"/etc/canopy/", "/var/lib/canopy/", dir+"/var/lib/canopy/").
			Replace(string(tarFile(t, tarball, p.Short+".yaml")))
		if err := os.WriteFile(cfg, []byte(moved), 0o644); err != nil {
			t.Fatal(err)
		}
		if p.Short == "hub" { // the commands postinst runs
			runOK(t, bin, "tls", "init", "--dir", dir+"/etc/canopy/tls")
			runOK(t, bin, "init", "--config", cfg, "--key-dir", dir+"/var/lib/canopy/hub/keys")
		}
		out, err := exec.Command(bin, "check-config", "--config", cfg).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "configuration OK") {
			t.Errorf("%s check-config --config %s: %v\n%s", p.Name, p.Config(), err, out)
		}
		if !strings.Contains(string(tarFile(t, tarball, p.Short+".yaml")), p.StateDir()) {
			t.Errorf("%s's default configuration keeps its state elsewhere than %s", p.Name, p.StateDir())
		}
	}
}

func testDebs(t *testing.T, dist, version string, built map[string][]string) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	for name, arches := range built {
		p := productNamed(name)
		for _, a := range arches {
			deb := filepath.Join(dist, debName(name, version, a))
			info := runOK(t, "dpkg-deb", "--info", deb)
			for _, want := range []string{
				"Package: " + name, "Version: " + version, "Architecture: " + a,
				" conffiles ", " preinst ", " postinst ", " prerm ", " postrm ",
			} {
				if !strings.Contains(info, want) {
					t.Errorf("dpkg-deb --info %s lacks %q:\n%s", filepath.Base(deb), want, info)
				}
			}
			if strings.Contains(info, "Depends:") {
				t.Errorf("%s has dependencies (its binary is static):\n%s", filepath.Base(deb), info)
			}
			if conffiles := runOK(t, "dpkg-deb", "--info", deb, "conffiles"); strings.TrimSpace(conffiles) != p.Config() {
				t.Errorf("%s conffiles = %q, want %s", filepath.Base(deb), conffiles, p.Config())
			}
			for _, s := range scriptNames {
				text := runOK(t, "dpkg-deb", "--info", deb, s)
				if !strings.Contains(text, "NAME="+name+"\n") || placeholderRE.MatchString(text) {
					t.Errorf("%s %s is not filled in for %s:\n%s", filepath.Base(deb), s, name, text)
				}
			}
			entries := map[string]string{} // path: mode owner
			for _, line := range strings.Split(runOK(t, "dpkg-deb", "--contents", deb), "\n") {
				if f := strings.Fields(line); len(f) >= 6 {
					entries[strings.TrimPrefix(f[len(f)-1], ".")] = f[0] + " " + f[1]
				}
			}
			for path, want := range map[string]string{
				"/usr/bin/" + name: "-rwxr-xr-x root/root",
				"/usr/lib/systemd/system/" + name + ".service": "-rw-r--r-- root/root",
				"/usr/lib/sysusers.d/" + name + ".conf":        "-rw-r--r-- root/root",
				"/usr/lib/tmpfiles.d/" + name + ".conf":        "-rw-r--r-- root/root",
				p.Config():                                     "-rw-r--r-- root/root",
			} {
				if entries[path] != want {
					t.Errorf("dpkg-deb --contents %s: %s is %q, want %q", filepath.Base(deb), path, entries[path], want)
				}
			}
		}
	}
}

func testRPMs(t *testing.T, dist, version string, built map[string][]string) {
	rpmTool, err := exec.LookPath("rpm")
	for name, arches := range built {
		p := productNamed(name)
		for _, a := range arches {
			file := filepath.Join(dist, rpmName(name, version, a))
			data, rerr := os.ReadFile(file)
			if rerr != nil || !bytes.HasPrefix(data, []byte{0xed, 0xab, 0xee, 0xdb}) {
				t.Errorf("%s is no rpm: %v", file, rerr)
				continue
			}
			if err != nil {
				continue // only the lead is checked without the rpm tool
			}
			want, _ := archNamed(a)
			if got := runOK(t, rpmTool, "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}", file); got != name+" "+version+" "+want.RPM {
				t.Errorf("rpm -qp %s = %q", filepath.Base(file), got)
			}
			list := runOK(t, rpmTool, "-qpl", file)
			for _, f := range []string{"/usr/bin/" + name, "/usr/lib/systemd/system/" + name + ".service", "/usr/lib/sysusers.d/" + name + ".conf", p.Config()} {
				if !strings.Contains(list, f+"\n") {
					t.Errorf("rpm -qpl %s lacks %s:\n%s", filepath.Base(file), f, list)
				}
			}
			if cfg := runOK(t, rpmTool, "-qpc", file); strings.TrimSpace(cfg) != p.Config() {
				t.Errorf("rpm -qpc %s = %q", filepath.Base(file), cfg)
			}
			scripts := runOK(t, rpmTool, "-qp", "--scripts", file)
			for _, s := range []string{"preinstall", "postinstall", "preuninstall", "postuninstall"} {
				if !strings.Contains(scripts, s+" scriptlet") {
					t.Errorf("rpm %s has no %s scriptlet", filepath.Base(file), s)
				}
			}
		}
	}
	if err != nil {
		t.Skip("rpm not installed: checked the rpm lead only")
	}
}

// testInstallScript installs canopy-leaf with install.sh into a scratch
// root: twice (the second run changes nothing), over a changed
// configuration, then uninstalls, reinstalls and purges.
func testInstallScript(t *testing.T, dist, host string) {
	root := t.TempDir()
	install := func(args ...string) string {
		t.Helper()
		return runOK(t, "sh", append([]string{"../install.sh", "leaf", "--from", dist, "--root", root, "--arch", host}, args...)...)
	}
	p := productNamed("canopy-leaf")
	uninstaller := filepath.Join(root, "usr/lib/canopy/canopy-leaf-uninstall.sh")
	config := filepath.Join(root, p.Config())
	want := map[string]fs.FileMode{
		"usr/bin/canopy-leaf":                        0o755,
		"usr/lib/systemd/system/canopy-leaf.service": 0o644,
		"usr/lib/sysusers.d/canopy-leaf.conf":        0o644,
		"usr/lib/tmpfiles.d/canopy-leaf.conf":        0o644,
		"etc/canopy/leaf.yaml":                       0o644,
		"usr/lib/canopy/canopy-leaf-uninstall.sh":    0o755,
	}
	enabled := "etc/systemd/system/multi-user.target.wants/canopy-leaf.service"
	_, systemctlErr := exec.LookPath("systemctl")

	out := install()
	if !strings.Contains(out, "installed /usr/bin/canopy-leaf") {
		t.Errorf("first run:\n%s", out)
	}
	first := tree(t, root)
	for path, mode := range want {
		if got, ok := first[path]; !ok || !strings.HasPrefix(got, mode.String()) {
			t.Errorf("%s: %q, want mode %s", path, got, mode)
		}
	}
	if systemctlErr == nil && !strings.HasPrefix(first[enabled], "symlink") {
		t.Errorf("canopy-leaf.service not enabled under the root: %v", first)
	}
	tarball, _ := os.ReadFile(filepath.Join(dist, TarballName("canopy-leaf", host)))
	if got, _ := os.ReadFile(filepath.Join(root, "usr/bin/canopy-leaf")); !bytes.Equal(got, tarFileBytes(t, tarball, "canopy-leaf")) {
		t.Error("installed binary differs from the tarball's")
	}
	if _, err := exec.LookPath("shellcheck"); err == nil {
		shellcheck(t, uninstaller)
	}

	out = install()
	if !strings.Contains(out, "already installed; nothing changed") {
		t.Errorf("second run:\n%s", out)
	}
	assertSameTree(t, first, tree(t, root))

	appendFile(t, config, "# changed here\n")
	changed := tree(t, root)
	if out := install(); !strings.Contains(out, "already installed") {
		t.Errorf("run over a changed configuration:\n%s", out)
	}
	assertSameTree(t, changed, tree(t, root))

	runOK(t, "sh", uninstaller)
	left := tree(t, root)
	if _, ok := left["etc/canopy/leaf.yaml"]; !ok || len(pathsOf(left)) != 1 {
		t.Errorf("uninstall left %v, want the configuration only", pathsOf(left))
	}

	install() // over the kept configuration
	if data, _ := os.ReadFile(config); !strings.HasSuffix(string(data), "# changed here\n") {
		t.Error("reinstall replaced the configuration")
	}
	runOK(t, "sh", uninstaller, "--purge")
	if left := pathsOf(tree(t, root)); len(left) > 0 {
		t.Errorf("uninstall --purge left %v", left)
	}

	// A tarball that does not match its .sha256 is not installed.
	bad := t.TempDir()
	name := TarballName("canopy-leaf", host)
	if err := os.WriteFile(filepath.Join(bad, name), append(tarball[:len(tarball):len(tarball)], 0), 0o644); err != nil {
		t.Fatal(err)
	}
	sidecar, _ := os.ReadFile(filepath.Join(dist, name+".sha256"))
	if err := os.WriteFile(filepath.Join(bad, name+".sha256"), sidecar, 0o644); err != nil {
		t.Fatal(err)
	}
	root2 := t.TempDir()
	cmd := exec.Command("sh", "../install.sh", "leaf", "--from", bad, "--root", root2, "--arch", host)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "sha256") {
		t.Errorf("install.sh took a corrupt tarball: %v\n%s", err, out)
	}
	if left := pathsOf(tree(t, root2)); len(left) > 0 {
		t.Errorf("failed install left %v", left)
	}
}

// testDpkgInstall installs the host's canopy-leaf .deb on this machine, with
// no systemd running (as in containers), and purges it again.
func testDpkgInstall(t *testing.T, deb, version string) {
	if os.Geteuid() != 0 {
		t.Skip("not root: dpkg -i would install into this system")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed")
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "canopy-leaf").Output(); len(out) > 0 && string(out) != "not-installed" {
		t.Skipf("canopy-leaf is on this system already (%s): not touching it", out)
	}
	if exists("/etc/canopy") || exists("/var/lib/canopy") || exec.Command("getent", "passwd", "canopy").Run() == nil {
		t.Skip("this system has a canopy user, /etc/canopy or /var/lib/canopy already: not touching it")
	}
	groupsBefore := map[string]bool{}
	for _, g := range []string{"gpio", "i2c"} {
		groupsBefore[g] = exec.Command("getent", "group", g).Run() == nil
	}
	t.Cleanup(func() {
		out, err := exec.Command("dpkg", "--purge", "canopy-leaf").CombinedOutput()
		t.Logf("cleanup: dpkg --purge canopy-leaf: %v\n%s", err, out)
	})
	_, systemctlErr := exec.LookPath("systemctl")
	const enabled = "/etc/systemd/system/multi-user.target.wants/canopy-leaf.service"

	t.Log(runOK(t, "dpkg", "-i", deb))
	if out := runOK(t, "/usr/bin/canopy-leaf", "version"); !strings.Contains(out, "canopy-leaf "+version+" ") {
		t.Errorf("canopy-leaf version = %q, want %s", out, version)
	}
	if out := runOK(t, "/usr/bin/canopy-leaf", "check-config", "--config", "/etc/canopy/leaf.yaml"); !strings.Contains(out, "configuration OK") {
		t.Errorf("installed configuration: %s", out)
	}
	uid := strings.Split(runOK(t, "getent", "passwd", "canopy"), ":")[2]
	if owner := ownerOf(t, "/var/lib/canopy/leaf"); owner != uid {
		t.Errorf("/var/lib/canopy/leaf owned by uid %s, want canopy (%s)", owner, uid)
	}
	if _, err := exec.LookPath("systemd-tmpfiles"); err == nil {
		if fi, err := os.Stat("/etc/canopy/leaf.yaml"); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("/etc/canopy/leaf.yaml: %v, want mode 0640 (tmpfiles.d)", fi.Mode())
		}
	}
	if systemctlErr == nil && !exists(enabled) {
		t.Error("canopy-leaf.service not enabled")
	}
	runAsService(t, "/usr/bin/canopy-leaf", "/var/lib/canopy/leaf")

	// An upgrade (here: the same version again) keeps the configuration
	// and the state.
	appendFile(t, "/etc/canopy/leaf.yaml", "# changed here\n")
	appendFile(t, "/var/lib/canopy/leaf/kept", "state\n")
	runOK(t, "dpkg", "-i", deb)
	if data, _ := os.ReadFile("/etc/canopy/leaf.yaml"); !strings.HasSuffix(string(data), "# changed here\n") {
		t.Error("upgrade replaced the changed configuration")
	}
	if !exists("/var/lib/canopy/leaf/kept") {
		t.Error("upgrade lost the state")
	}

	// remove keeps configuration, state and user; reinstalling enables the
	// service again.
	runOK(t, "dpkg", "--remove", "canopy-leaf")
	for _, p := range []string{"/usr/bin/canopy-leaf", "/usr/lib/systemd/system/canopy-leaf.service", enabled} {
		if exists(p) {
			t.Errorf("after remove, %s is still there", p)
		}
	}
	if !exists("/etc/canopy/leaf.yaml") || !exists("/var/lib/canopy/leaf/kept") || exec.Command("getent", "passwd", "canopy").Run() != nil {
		t.Error("remove took configuration, state or user")
	}
	runOK(t, "dpkg", "-i", deb)
	if systemctlErr == nil && !exists(enabled) {
		t.Error("canopy-leaf.service not enabled after reinstall")
	}

	t.Log(runOK(t, "dpkg", "--purge", "canopy-leaf"))
	for _, p := range []string{
		"/etc/canopy", "/var/lib/canopy", "/usr/bin/canopy-leaf", "/usr/lib/systemd/system/canopy-leaf.service",
		"/usr/lib/sysusers.d/canopy-leaf.conf", "/usr/lib/tmpfiles.d/canopy-leaf.conf", enabled,
	} {
		if exists(p) {
			t.Errorf("after purge, %s is still there", p)
		}
	}
	if exec.Command("getent", "passwd", "canopy").Run() == nil || exec.Command("getent", "group", "canopy").Run() == nil {
		t.Error("after purge, the canopy user or group is still there")
	}
	for g, before := range groupsBefore {
		if after := exec.Command("getent", "group", g).Run() == nil; after != before {
			t.Errorf("group %s: existed before %v, after purge %v", g, before, after)
		}
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "canopy-leaf").Output(); len(out) > 0 && string(out) != "not-installed" {
		t.Errorf("after purge dpkg says %s", out)
	}
}

// runAsService starts bin as the unit does (user canopy, the state
// directory as working directory, the installed configuration), on free
// ports, waits until it is ready and stops it: the package's user,
// ownership and permissions work for the service.
func runAsService(t *testing.T, bin, dir string) {
	t.Helper()
	fields := strings.Split(strings.TrimSpace(runOK(t, "getent", "passwd", "canopy")), ":")
	var uid, gid uint32
	if _, err := fmt.Sscan(fields[2]+" "+fields[3], &uid, &gid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", "/etc/canopy/leaf.yaml", "--nats-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{gid}}}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var log bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), `msg="leaf ready"`) {
				select {
				case <-ready:
				default:
					close(ready)
				}
			}
		}
	}()
	select {
	case <-ready:
	case <-done:
	case <-time.After(30 * time.Second):
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	err = cmd.Wait()
	select {
	case <-ready:
		if err != nil {
			t.Errorf("canopy-leaf as user canopy: exit %v after SIGTERM\n%s", err, log.String())
		}
	default:
		t.Errorf("canopy-leaf as user canopy never got ready: %v\n%s", err, log.String())
	}
}

func productNamed(name string) product {
	for _, p := range products {
		if p.Name == name {
			return p
		}
	}
	panic("no product " + name)
}

// runOK runs a command and returns its standard output; a failure fails
// the test with both outputs.
func runOK(t testing.TB, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func tarFile(t testing.TB, tarball, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	return tarFileBytes(t, data, name)
}

func tarFileBytes(t testing.TB, tarball []byte, name string) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(tarball))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the tarball: %v", name, err)
		}
		if hdr.Name == name {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
}

// tree describes every file and symlink under root: mode, size, time and
// hash, or the link target.
func tree(t testing.TB, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(path)
			m[rel] = "symlink " + target
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		m[rel] = fmt.Sprintf("%s %d %d %x", fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func pathsOf(tree map[string]string) []string {
	var names []string
	for name := range tree {
		names = append(names, name)
	}
	return names
}

func assertSameTree(t testing.TB, before, after map[string]string) {
	t.Helper()
	for path, b := range before {
		if a := after[path]; a != b {
			t.Errorf("%s changed: %q -> %q", path, b, a)
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			t.Errorf("%s appeared", path)
		}
	}
}

func appendFile(t testing.TB, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func ownerOf(t testing.TB, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(fi.Sys().(*syscall.Stat_t).Uid)
}
