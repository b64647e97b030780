# shellcheck shell=bash
# Helpers shared by the scripts in bench/, which source this
# file: logging, building, stopping a server, reading the load generators'
# result lines and the statistics of the report. It defines functions only.

log() { printf '%s\n' "$*" >&2; }

# make_work NAME: a fresh work directory ($work, with bin/, logs/ and
# data/; $bin is its bin/), the processes of the current run ($pids) and
# the failed runs ($failures). At exit the processes are killed and the
# directory removed, or, when a run failed, its logs/ kept for a look.
make_work() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-$1.XXXXXX")
	bin=$work/bin
	mkdir -p "$bin" "$work/logs" "$work/data"
	pids=()
	failures=()
	trap cleanup_work EXIT
	trap 'exit 130' INT TERM
}

# start PIDVAR LOG COMMAND…: starts COMMAND in the background with its
# output in LOG, records its pid in pids and in the variable PIDVAR.
start() {
	local -n pidvar=$1
	local out=$2
	shift 2
	"$@" >"$out" 2>&1 &
	pidvar=$!
	pids+=("$pidvar")
}

cleanup_work() {
	local pid
	for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	if [ ${#failures[@]} -gt 0 ]; then
		rm -rf "${work:?}/bin" "${work:?}/data"
		log "server logs kept in $work/logs"
	else
		rm -rf "$work"
	fi
}

# number UNIT VALUE: thousands separators, and 1 decimal for µs, ms and
# KiB/conn.
number() {
	awk -v u="$1" -v x="$2" 'BEGIN {
		frac = ""
		if (u == "µs" || u == "ms" || u == "KiB/conn") { s = sprintf("%.1f", x); frac = substr(s, length(s) - 1); s = substr(s, 1, length(s) - 2) }
		else s = sprintf("%.0f", x)
		out = ""
		while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
		printf "%s%s%s", s, out, frac
	}'
}

# Every binary is built the way the shipped ones are: static, stripped,
# without file system paths.
build() { # output package [go build flags…]
	local out=$1 pkg=$2
	shift 2
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" "$@" -o "$out" "$pkg"
}

# stop_pid PID: SIGTERM, then SIGKILL if the process has not exited within
# 10 seconds. Sets stop_error when it had already exited on its own.
# (bash reaps its background children as they exit, so kill -0 fails as
# soon as the process is gone.)
stop_pid() {
	local pid=$1 rc=0 i
	# shellcheck disable=SC2034 # read by the scripts that source this file
	stop_error=""
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null || rc=$?
		# shellcheck disable=SC2034
		stop_error="the server exited during the run (status $rc)"
		return 0
	fi
	kill -TERM "$pid"
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# rss_kib PID prints the resident memory of a process in KiB (VmRSS in
# /proc/PID/status), or fails if the process is gone.
rss_kib() {
	awk '/^VmRSS:/ { print $2; found = 1 } END { exit !found }' "/proc/$1/status" 2>/dev/null
}

# field KEY LINE prints the value of KEY=value in a natsbench or mqttbench
# result line.
field() {
	local kv
	for kv in $2; do
		if [ "${kv%%=*}" = "$1" ]; then
			echo "${kv#*=}"
			return 0
		fi
	done
	return 1
}

median() { # values… → their median
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# spread values… → half the range as a share of the median, e.g. "±3%"
spread() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END {
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			if (NR > 1 && m > 0) printf "±%.0f%%", 100 * (v[NR] - v[1]) / 2 / m
		}'
}

# extremes values… → "min–max"
extremes() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%s %s", v[1], v[NR] }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "–" }'; }

# median_cell SERVER UNIT SAMPLES…: appends to the caller's line the cell of
# SERVER's samples (their median and spread, or "failed" without any) and
# records the median in the caller's med[SERVER], for ratio_cells.
# shellcheck disable=SC2004,SC2154 # line and med (associative) belong to the caller
median_cell() {
	local s=$1 unit=$2 sp
	shift 2
	if [ $# -eq 0 ]; then
		line+=" failed |"
		return
	fi
	med[$s]=$(median "$@")
	sp=$(spread "$@")
	line+=" $(number "$unit" "${med[$s]}")${sp:+ ($sp)} |"
}

# ratio_cells prints the ratio columns of a table row, from the caller's
# med (contender → median) and ratios ("a|b" pairs) arrays.
# shellcheck disable=SC2154 # med and ratios belong to the caller
ratio_cells() {
	local p a b out=""
	for p in "${ratios[@]}"; do
		IFS='|' read -r a b <<<"$p"
		if [ -n "${med[$a]:-}" ] && [ -n "${med[$b]:-}" ]; then
			out+=" $(ratio "${med[$a]}" "${med[$b]}") |"
		else
			out+=" – |"
		fi
	done
	printf '%s' "$out"
}

# machine: one line naming the CPUs, kernel and Go version, for reports.
machine() {
	local cpu
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
	echo "$(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr), $(go version | cut -d' ' -f3-)"
}

# leaf_commit: the commit canopy-leaf is built from, marked when the tree
# has changes outside bench/ and docs/. In a tree that is not a git
# checkout (a `git archive` export, say), CANOPY_COMMIT names it.
leaf_commit() {
	local commit
	if ! commit=$(git rev-parse --short HEAD 2>/dev/null); then
		echo "${CANOPY_COMMIT:-unknown} (exported tree, no git checkout)"
		return
	fi
	if [ -n "$(git status --porcelain -- . ':!bench' ':!docs' 2>/dev/null)" ]; then
		commit="$commit with uncommitted changes"
	fi
	echo "$commit"
}
