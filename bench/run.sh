#!/usr/bin/env bash
# Measures canopy-leaf side by side with nats-server (the version in go.mod,
# which canopy-hub embeds, and Debian's) and prints a markdown table of
# medians and ratios on stdout. Progress and every run's raw result go to
# stderr. docs/benchmarks.md says what each case measures and how to read
# the table.
#
# usage: bench/run.sh [-r ROUNDS] [-s SERVERS] [-q]
#
#   -r, --rounds N     rounds of every case (env ROUNDS, default 3)
#   -s, --servers LIST servers to measure, from "leaf nats debian"
#                      (env SERVERS, default all three; comma or space separated)
#   -q, --quick        smoke test of this script: few messages, 1 round (env QUICK=1)
#
# Each run starts its server fresh on a free port and stops it afterwards.
# Within a round the servers take turns (leaf, nats, debian, leaf, nats, …),
# so that a noisy neighbour on the machine hits them all alike.
#
# Exit status: 0 when every run succeeded, 1 otherwise (the table is still
# printed, with "failed" where a cell has no result), 2 on a bad command line.
set -euo pipefail

script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$script")/.."
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
# shellcheck source=bench/lib.sh
. bench/lib.sh

die() { log "run.sh: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$script" >&2; exit "${1:-2}"; }

rounds=${ROUNDS:-}
quick=${QUICK:-0}
wanted=${SERVERS:-leaf nats debian}
while [ $# -gt 0 ]; do
	case $1 in
	-r | --rounds) [ $# -ge 2 ] || usage; rounds=$2; shift 2 ;;
	-s | --servers) [ $# -ge 2 ] || usage; wanted=$2; shift 2 ;;
	-q | --quick) quick=1; shift ;;
	-h | --help) usage 0 ;;
	*) log "run.sh: unknown argument $1"; usage ;;
	esac
done
wanted=${wanted//,/ }
for s in $wanted; do
	case $s in leaf | nats | debian) ;; *) log "run.sh: unknown server $s"; usage ;; esac
done

# Workload sizes. Quick mode only checks that the script and every server
# work end to end; its numbers mean little.
if [ "$quick" = 1 ]; then
	rounds=${rounds:-1}
	msgs=50000
	requests=2000
	idle_clients=100
else
	rounds=${rounds:-3}
	msgs=1000000
	requests=100000
	idle_clients=1000
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { log "run.sh: rounds must be a positive integer, got $rounds"; usage; }

work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-bench.XXXXXX")
bin=$work/bin
mkdir -p "$bin" "$work/logs" "$work/data"
server_pid=""
failures=()
# The work directory goes away at the end unless a run failed: then its
# logs/ hold every server's output for a look.
cleanup() {
	if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
	if [ ${#failures[@]} -gt 0 ]; then
		rm -rf "${work:?}/bin" "${work:?}/data" "${work:?}"/size-*
		log "server logs kept in $work/logs"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- servers ---------------------------------------------------------------

declare -A label version
servers=()
nats_version=""

log "building natsbench and the servers…"
build "$bin/natsbench" ./bench/natsbench
natsbench=$bin/natsbench

# The version the hub embeds is needed in every case: it is the reference
# of every ratio and of the binary sizes.
build "$bin/natsserver" ./bench/natsserver
nats_version=$("$bin/natsserver" -version)

leaf_buildable=0
for s in $wanted; do
	case $s in
	leaf)
		if [ ! -d cmd/canopy-leaf ]; then
			log "skipping canopy-leaf: ./cmd/canopy-leaf does not exist yet"
			continue
		fi
		if ! build "$bin/canopy-leaf" ./cmd/canopy-leaf 2>"$work/leaf-build.log"; then
			log "skipping canopy-leaf: go build ./cmd/canopy-leaf failed:"
			sed 's/^/    /' "$work/leaf-build.log" >&2
			continue
		fi
		leaf_buildable=1
		label[leaf]="canopy-leaf"
		version[leaf]="canopy-leaf built from commit $(leaf_commit)"
		;;
	nats)
		label[nats]="nats-server $nats_version"
		version[nats]="nats-server $nats_version (go.mod; plain defaults through bench/natsserver)"
		;;
	debian)
		debian_bin=/usr/sbin/nats-server
		if [ ! -x "$debian_bin" ]; then
			if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
				log "installing Debian's nats-server…"
				apt-get update -qq >&2
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >&2
			else
				log "skipping Debian's nats-server: $debian_bin is not installed and installing it needs root (apt-get install nats-server)"
				continue
			fi
		fi
		v=$("$debian_bin" --version)
		v=${v##*v}
		label[debian]="nats-server $v (Debian)"
		version[debian]="nats-server $v (Debian package, $debian_bin, default options)"
		;;
	esac
	servers+=("$s")
done
[ ${#servers[@]} -gt 0 ] || die "no server to measure"

# start_server SERVER PORT DATADIR: starts SERVER in the background, its
# output in $server_log, and sets server_pid. Every server's NATS listener
# is on 127.0.0.1; everything else is left at the server's defaults.
start_server() {
	local s=$1 port=$2 data=$3
	case $s in
	leaf) "$bin/canopy-leaf" run --nats-listen "127.0.0.1:$port" --mqtt-enabled=false --data-dir "$data" >"$server_log" 2>&1 & ;;
	nats) "$bin/natsserver" -host 127.0.0.1 -port "$port" >"$server_log" 2>&1 & ;;
	debian) "$debian_bin" -a 127.0.0.1 -p "$port" >"$server_log" 2>&1 & ;;
	esac
	server_pid=$!
}

# stop_server: stops the server of the run (stop_pid), setting stop_error
# when it had already exited on its own.
stop_server() {
	local pid=$server_pid
	server_pid=""
	stop_pid "$pid"
}

# ---- binary sizes ----------------------------------------------------------

# Built now, right after the host binaries, so that every canopy-leaf binary
# comes from the same source tree even while it is being edited.
declare -A size_of
log "building for the device targets, to compare sizes…"
for t in "arm64|" "arm|6"; do
	IFS='|' read -r arch arm <<<"$t"
	out="$work/size-natsserver-$arch"
	GOOS=linux GOARCH=$arch GOARM=$arm build "$out" ./bench/natsserver
	size_of["nats|$arch"]=$(stat -c %s "$out")
	if [ "$leaf_buildable" = 1 ]; then
		out="$work/size-canopy-leaf-$arch"
		if GOOS=linux GOARCH=$arch GOARM=$arm build "$out" ./cmd/canopy-leaf 2>"$work/leaf-build.log"; then
			size_of["leaf|$arch"]=$(stat -c %s "$out")
		else
			log "no canopy-leaf size for linux/$arch: the build failed:"
			sed 's/^/    /' "$work/leaf-build.log" >&2
		fi
	fi
done

# ---- cases -----------------------------------------------------------------

# A case is a natsbench command line; %PID% stands for the server's pid.
cases=(pubsub-16 pubsub-256 fanout-5 queue-4 reqrep idle-0 idle-n)
declare -A case_args=(
	[pubsub-16]="pubsub -subs 1 -size 16 -msgs $msgs"
	[pubsub-256]="pubsub -subs 1 -size 256 -msgs $msgs"
	[fanout-5]="pubsub -subs 5 -size 16 -msgs $msgs"
	[queue-4]="queue -members 4 -size 16 -msgs $msgs"
	[reqrep]="reqrep -size 16 -requests $requests"
	[idle-0]="idle -clients 0 -pid %PID%"
	[idle-n]="idle -clients $idle_clients -pid %PID%"
)

# Table rows: case, result key, description, unit, which way is better.
rows=(
	"pubsub-16|recv_msgs_per_s|pub/sub 16 B, 1 subscriber|msgs/s|higher"
	"pubsub-256|recv_msgs_per_s|pub/sub 256 B, 1 subscriber|msgs/s|higher"
	"fanout-5|recv_msgs_per_s|fan-out 16 B to 5 subscribers (all received)|msgs/s|higher"
	"queue-4|recv_msgs_per_s|queue group of 4, 16 B|msgs/s|higher"
	"reqrep|p50_us|request/reply p50|µs|lower"
	"reqrep|p99_us|request/reply p99|µs|lower"
	"reqrep|p999_us|request/reply p99.9|µs|lower"
	"idle-0|rss_kib|RSS, no client|KiB|lower"
	"idle-n|rss_kib|RSS, $(number x "$idle_clients") idle clients|KiB|lower"
)

declare -A samples # "case|key|server" → space-separated values, one per round

# run_case SERVER CASE ROUND
run_case() {
	local s=$1 c=$2 r=$3 port out="" err_msg="" args row row_case key v
	local tag="$c round $r/$rounds ${label[$s]}"
	port=$("$natsbench" free-port)
	server_log="$work/logs/$s-$c-$r.log"
	local data="$work/data/$s-$c-$r"
	mkdir -p "$data"
	start_server "$s" "$port" "$data"
	args=${case_args[$c]//%PID%/$server_pid}
	# shellcheck disable=SC2086 # args is a list of words by construction
	if ! "$natsbench" wait-listen -port "$port" -pid "$server_pid" -timeout 30s 2>"$work/natsbench.err" ||
		! out=$("$natsbench" $args -url "nats://127.0.0.1:$port" 2>"$work/natsbench.err"); then
		err_msg=$(cat "$work/natsbench.err")
	fi
	stop_server
	if [ -n "$stop_error" ]; then
		err_msg="${err_msg:+$err_msg; }$stop_error"
	fi
	rm -rf "$data"
	if [ -n "$err_msg" ]; then
		failures+=("$tag: $err_msg")
		log "  $tag: FAILED: $err_msg"
		log "    last lines of the server's output:"
		tail -n 5 "$server_log" | sed 's/^/      /' >&2
		return 0
	fi
	log "  $tag: $out"
	for row in "${rows[@]}"; do
		IFS='|' read -r row_case key _ <<<"$row"
		[ "$row_case" = "$c" ] || continue
		v=$(field "$key" "$out") || { failures+=("$tag: no $key in: $out"); continue; }
		samples["$c|$key|$s"]+="$v "
	done
}

names=""
for s in "${servers[@]}"; do names+="${names:+; }${label[$s]}"; done
log "servers: $names"
log "rounds: $rounds; throughput runs: $msgs messages; request/reply: $requests requests"
for c in "${cases[@]}"; do
	for ((r = 1; r <= rounds; r++)); do
		for s in "${servers[@]}"; do
			run_case "$s" "$c" "$r"
		done
	done
done

# ---- report ----------------------------------------------------------------

mib() { awk -v b="$1" 'BEGIN { if (b > 0) printf "%.2f MiB", b / 1048576; else printf "failed" }'; }

# The ratio columns: every server against the version the hub embeds, and
# canopy-leaf against Debian's when both ran.
ratios=()
short() { case $1 in leaf) echo "canopy-leaf" ;; nats) echo "$nats_version" ;; debian) local l=${label[debian]#nats-server }; echo "${l% (Debian)}" ;; esac; }
for s in "${servers[@]}"; do
	[ "$s" = nats ] || [ -z "${label[nats]:-}" ] || ratios+=("$s|nats")
done
if [ -n "${label[leaf]:-}" ] && [ -n "${label[debian]:-}" ]; then ratios+=("leaf|debian"); fi

command_line="bench/run.sh"
[ "$quick" = 1 ] && command_line="QUICK=1 $command_line"
[ "$rounds" != 3 ] && [ "$quick" != 1 ] && command_line="$command_line -r $rounds"
[ "$wanted" != "leaf nats debian" ] && command_line="$command_line -s '$wanted'"

{
	echo "Command: \`$command_line\`, $(date -u '+%Y-%m-%d %H:%M UTC')."
	echo
	echo "- machine: $(machine)"
	for s in "${servers[@]}"; do echo "- ${version[$s]}"; done
	echo "- $rounds round(s), servers alternating run by run; each run a fresh server;" \
		"$(number x "$msgs") messages per throughput run, $(number x "$requests") requests per latency run"
	echo
	header="| case | unit | better |"
	rule="| --- | --- | --- |"
	for s in "${servers[@]}"; do header+=" ${label[$s]} |"; rule+=" ---: |"; done
	for p in "${ratios[@]}"; do
		IFS='|' read -r a b <<<"$p"
		header+=" $(short "$a") ÷ $(short "$b") |"
		rule+=" ---: |"
	done
	echo "$header"
	echo "$rule"
	for row in "${rows[@]}"; do
		IFS='|' read -r c key desc unit better <<<"$row"
		line="| $desc | $unit | $better |"
		declare -A med=()
		for s in "${servers[@]}"; do
			read -r -a vals <<<"${samples["$c|$key|$s"]:-}"
			median_cell "$s" "$unit" "${vals[@]}"
		done
		line+=$(ratio_cells)
		unset med
		echo "$line"
	done
	echo
	echo "Cells are medians over the rounds, with half the range as a share of the median;"
	echo "ratios divide medians measured in the same run."
	echo
	echo "Stripped binaries (\`CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w\"\`):"
	echo
	echo "| binary | linux/arm64 | linux/arm (GOARM=6) |"
	echo "| --- | ---: | ---: |"
	if [ "$leaf_buildable" = 1 ]; then
		echo "| canopy-leaf | $(mib "${size_of[leaf|arm64]:-}") | $(mib "${size_of[leaf|arm]:-}") |"
	fi
	echo "| nats-server $nats_version (bench/natsserver) | $(mib "${size_of[nats|arm64]}") | $(mib "${size_of[nats|arm]}") |"
	if [ "$leaf_buildable" = 1 ]; then
		echo "| canopy-leaf ÷ nats-server | $(ratio "${size_of[leaf|arm64]:-}" "${size_of[nats|arm64]}") | $(ratio "${size_of[leaf|arm]:-}" "${size_of[nats|arm]}") |"
	fi
}

if [ ${#failures[@]} -gt 0 ]; then
	log ""
	log "run.sh: ${#failures[@]} run(s) failed:"
	for f in "${failures[@]}"; do log "  $f"; done
	exit 1
fi
