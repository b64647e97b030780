#!/usr/bin/env bash
# Measures firmware delivery: one artifact rolled out from one canopy-hub
# (operator mode, in bench/fwbench's process) to N canopy-leaf processes
# at once, on loopback. Prints a markdown table on stdout (total time,
# hub egress against leaves × size, the leaves' RSS while they download
# and idle before), progress on stderr. docs/benchmarks.md ("Firmware
# delivery") says how to read it.
#
# usage: bench/firmware.sh [-l LEAVES] [-s SIZE] [-q]
#
#   -l, --leaves N   canopy-leaf processes (env LEAVES, default 20)
#   -s, --size S     artifact size, bytes or with a unit (env SIZE,
#                    default 50MB = 50,000,000 bytes)
#   -q, --quick      smoke test of this script: 3 leaves, 5MB (env QUICK=1)
#
# Needs Linux (/proc/PID/status) and about leaves × size × 3 of free disk
# in $TMPDIR (each leaf's download, staged and installed copies). Exit
# status: 0 when every leaf applied the artifact and its installed file
# matches, 1 otherwise (the temporary directory with every leaf's log is
# kept and named), 2 on a bad command line.
set -euo pipefail

script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$script")/.."
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
# shellcheck source=bench/lib.sh
. bench/lib.sh

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$script" >&2; exit "${1:-2}"; }

leaves=${LEAVES:-20}
size=${SIZE:-50MB}
if [ "${QUICK:-0}" = 1 ]; then leaves=3 size=5MB; fi
while [ $# -gt 0 ]; do
	case $1 in
	-l | --leaves) [ $# -ge 2 ] || usage; leaves=$2; shift 2 ;;
	-s | --size) [ $# -ge 2 ] || usage; size=$2; shift 2 ;;
	-q | --quick) leaves=3 size=5MB; shift ;;
	-h | --help) usage 0 ;;
	*) log "firmware.sh: unknown argument $1"; usage ;;
	esac
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log "building fwbench"
build "$tmp/fwbench" ./bench/fwbench

echo "- machine: $(machine)"
echo "- canopy-leaf built from commit $(leaf_commit) (fwbench builds it from ./cmd/canopy-leaf); canopy-hub in fwbench's process, operator mode, JetStream on disk"
echo
"$tmp/fwbench" -leaves "$leaves" -size "$size"
