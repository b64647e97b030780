#!/bin/sh
# install.sh: install canopy-leaf (or canopy-hub) as a systemd service on
# Linux without a package manager, or where packages are not wanted. Where
# dpkg is, prefer the .deb (docs/installing.md).
#
#   curl -fsSL https://github.com/canopy-iot/canopy/releases/latest/download/install.sh | sudo sh
#   curl -fsSL https://github.com/canopy-iot/canopy/releases/latest/download/install.sh | sudo sh -s -- hub
#   sudo sh install.sh --from dist          # artefacts from `go run ./packaging`
#
# Usage: install.sh [leaf|hub] [options]
#
#   --from DIR     take NAME_linux_ARCH.tar.gz and its .sha256 from DIR
#                  instead of downloading them
#   --url URL      download from URL ($CANOPY_URL; default: the latest release)
#   --version V    download release V (v1.2.3) instead of the latest
#   --arch ARCH    amd64, arm64, armhf or armel instead of this machine's
#   --root DIR     install into DIR as the system's root (an SD card image):
#                  files and `systemctl --root` only; the canopy user and
#                  the state directory are made at first boot
#   --no-start     do not start or restart the service
#   --print-arch   print the architecture this machine needs, and exit
#
# It verifies the tarball's sha256, then installs
#
#   /usr/bin/NAME                           the binary
#   /usr/lib/systemd/system/NAME.service    the unit
#   /usr/lib/sysusers.d/NAME.conf           the canopy user (and gpio, i2c groups)
#   /usr/lib/tmpfiles.d/NAME.conf           /etc/canopy permissions
#   /etc/canopy/SHORT.yaml                  the default configuration, only when
#                                           there is none: yours is never replaced
#   /usr/lib/canopy/NAME-uninstall.sh       removes all this again (--purge: also
#                                           the configuration and the state)
#
# creates the canopy user and /var/lib/canopy/SHORT, and enables and starts
# the service (on an upgrade: restarts it if it runs). A file already equal
# to the new one is left alone; when every file is, nothing happens and it
# says "already installed".
#
# For tests, CANOPY_UNAME_M and CANOPY_CPUINFO stand in for `uname -m` and
# /proc/cpuinfo.
set -eu

RELEASES=https://github.com/canopy-iot/canopy/releases

say() { echo "canopy install: $*"; }
die() {
	echo "canopy install: $*" >&2
	exit 1
}

usage() {
	sed -n 's/^# \{0,1\}//; /^Usage:/,/--print-arch/p' "$0" 2>/dev/null ||
		echo "usage: install.sh [leaf|hub] [--from DIR] [--url URL] [--version V] [--arch ARCH] [--root DIR] [--no-start]"
}

# detect_arch prints the Debian name of the architecture whose binary runs
# here. The binaries are static, so the kernel's architecture is what
# counts: a 64-bit kernel under a 32-bit Raspberry Pi OS takes arm64.
detect_arch() {
	m=${CANOPY_UNAME_M:-$(uname -m)}
	cpuinfo=${CANOPY_CPUINFO:-/proc/cpuinfo}
	case $m in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64 | aarch64_be) echo arm64 ;;
	armv6*) echo armel ;; # Pi Zero, Zero W, 1
	arm*)
		# armv7l, armv8l (a 32-bit kernel on a 64-bit CPU), …: the armhf
		# binary needs ARMv7 with VFPv3, which the CPU's features list.
		if grep -E '^Features[[:space:]]*:' "$cpuinfo" 2>/dev/null | grep -qwE 'vfpv3|vfpv3d16|vfpv4'; then
			echo armhf
		elif grep -qE '^(model name|Processor)[[:space:]]*:.*ARMv(7|8)' "$cpuinfo" 2>/dev/null; then
			echo armhf
		else
			echo armel
		fi
		;;
	*) die "no Canopy build for this machine ($m)" ;;
	esac
}

# sha256 prints a file's SHA-256 in hex.
sha256() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d ' ' -f 1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | cut -d ' ' -f 1
	elif command -v openssl >/dev/null 2>&1; then
		openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1
	else
		die "need sha256sum, shasum or openssl to verify the download"
	fi
}

fetch() { # fetch URL FILE
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1"
	else
		die "need curl or wget to download $1 (or use --from DIR)"
	fi
}

# put SRC DST MODE installs SRC at ROOT/DST unless an equal file is there.
put() {
	dst=$ROOT_PREFIX$2
	if [ -f "$dst" ] && [ "$(sha256 "$1")" = "$(sha256 "$dst")" ]; then
		return 0
	fi
	mkdir -p "$(dirname "$dst")"
	cp "$1" "$dst.canopy-new"
	chmod "$3" "$dst.canopy-new"
	mv -f "$dst.canopy-new" "$dst"
	say "installed $2"
	changed=$((changed + 1))
}

systemd_running() { [ "$ROOT" = / ] && [ -d /run/systemd/system ]; }

# ensure_user creates what the sysusers.d entry declares: the canopy user
# and group, and the groups the unit needs (gpio, i2c) where missing.
ensure_user() {
	conf=/usr/lib/sysusers.d/$NAME.conf
	groups_missing=
	# shellcheck disable=SC2013 # group names are words
	for g in $(sed -n 's/^g[[:space:]]\{1,\}\([^[:space:]]\{1,\}\).*/\1/p' "$conf"); do
		getent group "$g" >/dev/null 2>&1 || groups_missing="$groups_missing $g"
	done
	if getent passwd canopy >/dev/null 2>&1 && [ -z "$groups_missing" ]; then
		return 0
	fi
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers "$conf" || true
	fi
	if ! getent passwd canopy >/dev/null 2>&1; then
		adduser --system --group --home /var/lib/canopy --no-create-home canopy >/dev/null 2>&1 ||
			useradd --system --user-group --home-dir /var/lib/canopy --no-create-home \
				--shell /sbin/nologin canopy ||
			die "could not create the user canopy"
	fi
	for g in $groups_missing; do
		getent group "$g" >/dev/null 2>&1 || groupadd --system "$g" || addgroup -S "$g" ||
			die "could not create the group $g"
		echo "$g" >>/var/lib/canopy/.groups-created
	done
	say "created the user canopy"
	changed=$((changed + 1))
}

# write_uninstaller writes the uninstaller for NAME into FILE.
write_uninstaller() {
	cat >"$1" <<EOF
#!/bin/sh
# Uninstalls $NAME, installed by Canopy's install.sh into ${ROOT}.
#
#   $UNINSTALL [--purge]
#
# Stops and disables the service and removes what install.sh installed.
# $CONFIG and $STATE_DIR stay unless --purge is given;
# with --purge, the canopy user and the groups install.sh created go too
# when no Canopy binary is left.
set -eu
ROOT='$ROOT'
R='$ROOT_PREFIX'
NAME='$NAME'
purge=
[ "\${1:-}" = --purge ] && purge=1

if command -v systemctl >/dev/null 2>&1; then
	if [ "\$ROOT" = / ]; then
		if [ -d /run/systemd/system ]; then
			systemctl stop "\$NAME.service" || true
		fi
		systemctl disable "\$NAME.service" >/dev/null 2>&1 || true
	else
		systemctl --root="\$ROOT" disable "\$NAME.service" >/dev/null 2>&1 || true
		rmdir "\$R/etc/systemd/system/multi-user.target.wants" "\$R/etc/systemd/system" "\$R/etc/systemd" 2>/dev/null || true
	fi
fi
rm -f "\$R/usr/bin/\$NAME" "\$R/usr/lib/systemd/system/\$NAME.service" \\
	"\$R/usr/lib/sysusers.d/\$NAME.conf" "\$R/usr/lib/tmpfiles.d/\$NAME.conf"
if [ -n "\$purge" ]; then
	rm -f "\$R$CONFIG" "\$R/var/lib/canopy/.\$NAME.removed"
	rm -rf "\$R$STATE_DIR"
	if [ "\$ROOT" = / ] && [ ! -e /usr/bin/canopy-leaf ] && [ ! -e /usr/bin/canopy-hub ]; then
		if getent passwd canopy >/dev/null 2>&1; then
			userdel canopy || deluser canopy || true
		fi
		# shellcheck disable=SC2013 # group names are words
		for g in canopy \$(cat /var/lib/canopy/.groups-created 2>/dev/null); do
			if getent group "\$g" >/dev/null 2>&1; then
				groupdel "\$g" || delgroup "\$g" || true
			fi
		done
		rm -f /var/lib/canopy/.groups-created
	fi
	rmdir "\$R/var/lib/canopy" "\$R/etc/canopy" 2>/dev/null || true
fi
if [ "\$ROOT" = / ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
rm -f "\$R$UNINSTALL"
rmdir "\$R/usr/lib/canopy" 2>/dev/null || true
echo "$NAME uninstalled"
EOF
}

# ---- command line

product=leaf
from=
url=${CANOPY_URL:-}
version=
arch=
ROOT=/
start=1
while [ $# -gt 0 ]; do
	case $1 in
	leaf | hub) product=$1 ;;
	--from) from=${2:?--from needs a directory} && shift ;;
	--url) url=${2:?--url needs a URL} && shift ;;
	--version) version=${2:?--version needs a version} && shift ;;
	--arch) arch=${2:?--arch needs an architecture} && shift ;;
	--root) ROOT=${2:?--root needs a directory} && shift ;;
	--no-start) start= ;;
	--print-arch)
		detect_arch
		exit 0
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
	shift
done

NAME=canopy-$product
SHORT=$product
CONFIG=/etc/canopy/$SHORT.yaml
STATE_DIR=/var/lib/canopy/$SHORT
UNINSTALL=/usr/lib/canopy/$NAME-uninstall.sh
case $ROOT in
/) ROOT_PREFIX= ;;
/*) ROOT=${ROOT%/} ROOT_PREFIX=$ROOT ;;
*) die "--root needs an absolute path" ;;
esac
[ -n "$arch" ] || arch=$(detect_arch) || exit 1
case $product:$arch in
leaf:amd64 | leaf:arm64 | leaf:armhf | leaf:armel | hub:amd64 | hub:arm64) ;;
hub:*) die "canopy-hub is built for amd64 and arm64, not $arch" ;;
*) die "unknown architecture $arch (amd64, arm64, armhf, armel)" ;;
esac
if [ "$ROOT" = / ]; then
	[ "$(id -u)" = 0 ] || die "run as root (sudo sh install.sh …)"
	if command -v dpkg-query >/dev/null 2>&1 &&
		[ "$(dpkg-query -W -f='${Status}' "$NAME" 2>/dev/null)" = "install ok installed" ]; then
		die "$NAME is installed as a .deb package: upgrade it with apt install ./${NAME}_VERSION_$(dpkg --print-architecture).deb"
	fi
	if command -v rpm >/dev/null 2>&1 && rpm -q "$NAME" >/dev/null 2>&1; then
		die "$NAME is installed as an rpm package: upgrade it with the package manager"
	fi
fi
umask 022

# ---- fetch and verify

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
tarball=${NAME}_linux_$arch.tar.gz
if [ -n "$from" ]; then
	[ -f "$from/$tarball" ] || die "$from/$tarball: no such file (build it with go run ./packaging)"
	[ -f "$from/$tarball.sha256" ] || die "$from/$tarball.sha256: no such file"
	cp "$from/$tarball" "$from/$tarball.sha256" "$tmp/"
else
	if [ -z "$url" ]; then
		if [ -n "$version" ]; then url=$RELEASES/download/$version; else url=$RELEASES/latest/download; fi
	fi
	say "downloading $url/$tarball"
	fetch "$url/$tarball" "$tmp/$tarball" || die "download of $url/$tarball failed"
	fetch "$url/$tarball.sha256" "$tmp/$tarball.sha256" || die "download of $url/$tarball.sha256 failed"
fi
want=$(cut -d ' ' -f 1 "$tmp/$tarball.sha256")
got=$(sha256 "$tmp/$tarball")
if [ -z "$want" ] || [ "$want" != "$got" ]; then
	die "$tarball: sha256 is $got, but $tarball.sha256 says ${want:-nothing}: not installing"
fi
mkdir "$tmp/x"
tar -xzf "$tmp/$tarball" -C "$tmp/x"
for f in "$NAME" "$NAME.service" sysusers.conf tmpfiles.conf "$SHORT.yaml" VERSION; do
	[ -f "$tmp/x/$f" ] || die "$tarball holds no $f"
done
new_version=$(cat "$tmp/x/VERSION")

# ---- install

changed=0
fresh=
[ -e "$ROOT_PREFIX/usr/bin/$NAME" ] || fresh=1
put "$tmp/x/$NAME" "/usr/bin/$NAME" 0755
put "$tmp/x/$NAME.service" "/usr/lib/systemd/system/$NAME.service" 0644
put "$tmp/x/sysusers.conf" "/usr/lib/sysusers.d/$NAME.conf" 0644
put "$tmp/x/tmpfiles.conf" "/usr/lib/tmpfiles.d/$NAME.conf" 0644
if [ -e "$ROOT_PREFIX$CONFIG" ]; then
	[ "$changed" = 0 ] || say "kept $CONFIG as it is"
else
	put "$tmp/x/$SHORT.yaml" "$CONFIG" 0644
fi
write_uninstaller "$tmp/uninstall.sh"
put "$tmp/uninstall.sh" "$UNINSTALL" 0755

if [ "$ROOT" = / ]; then
	[ -d /var/lib/canopy ] || install -d -m 0755 /var/lib/canopy
	ensure_user
	if command -v systemd-tmpfiles >/dev/null 2>&1; then
		systemd-tmpfiles --create "/usr/lib/tmpfiles.d/$NAME.conf" >/dev/null 2>&1 || true
	fi
	if [ ! -d "$STATE_DIR" ]; then
		install -d -m 0750 -o canopy -g canopy "$STATE_DIR"
		say "created $STATE_DIR"
		changed=$((changed + 1))
	fi
fi

if [ "$changed" = 0 ]; then
	say "$NAME $new_version is already installed; nothing changed"
	exit 0
fi

if command -v systemctl >/dev/null 2>&1; then
	if [ "$ROOT" != / ]; then
		[ -z "$fresh" ] || systemctl --root="$ROOT" enable "$NAME.service" >/dev/null 2>&1 ||
			say "could not enable $NAME.service under $ROOT"
	elif systemd_running; then
		systemctl daemon-reload || true
		if [ -n "$fresh" ]; then
			systemctl enable "$NAME.service" >/dev/null 2>&1
			if [ -n "$start" ]; then
				systemctl start "$NAME.service" || say "$NAME did not start: see journalctl -u $NAME"
			fi
		elif [ -n "$start" ]; then
			systemctl try-restart "$NAME.service" || say "$NAME did not restart: see journalctl -u $NAME"
		fi
	elif [ -n "$fresh" ]; then
		systemctl enable "$NAME.service" >/dev/null 2>&1 || say "could not enable $NAME.service"
	fi
fi
say "$NAME $new_version installed; configuration in $CONFIG, uninstall with $UNINSTALL"
