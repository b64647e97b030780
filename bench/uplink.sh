#!/usr/bin/env bash
# Measures canopy-leaf's uplink side by side with a stock nats-server (the
# version in go.mod) running as a leaf node of the same kind of hub, and
# prints a markdown table of medians and ratios on stdout. Progress and
# every run's raw result go to stderr. docs/benchmarks.md ("Uplink") says
# what each case measures and how to read the table.
#
# usage: bench/uplink.sh [-r ROUNDS] [-s SERVERS] [-c CASES] [-q]
#
#   -r, --rounds N     rounds of every case (env ROUNDS, default 3)
#   -s, --servers LIST leaves to measure, from "leaf nats natsoff" (env
#                      SERVERS, default all three; comma or space separated):
#                      canopy-leaf, nats-server with its defaults, and
#                      nats-server with leafnode compression off
#   -c, --cases LIST   cases to run (env CASES, default all): up-16 up-256
#                      down-16 down-256 reqrep restore-short restore-long
#                      restore-equal
#   -q, --quick        smoke test of this script: few messages, short
#                      outages, 1 round (env QUICK=1)
#
# Every run starts a fresh hub (bench/natsserver with a leafnode listener)
# and a fresh leaf on free ports, and stops both afterwards. Within a round
# the leaves take turns, so that a noisy neighbour hits them all alike.
#
# Exit status: 0 when every run succeeded, 1 otherwise (the table is still
# printed, with "failed" where a cell has no result), 2 on a bad command line.
set -euo pipefail

script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$script")/.."
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
# shellcheck source=bench/lib.sh
. bench/lib.sh

die() { log "uplink.sh: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$script" >&2; exit "${1:-2}"; }

all_cases="up-16 up-256 down-16 down-256 reqrep restore-short restore-long restore-equal"
rounds=${ROUNDS:-}
quick=${QUICK:-0}
wanted=${SERVERS:-leaf nats natsoff}
cases=${CASES:-$all_cases}
while [ $# -gt 0 ]; do
	case $1 in
	-r | --rounds) [ $# -ge 2 ] || usage; rounds=$2; shift 2 ;;
	-s | --servers) [ $# -ge 2 ] || usage; wanted=$2; shift 2 ;;
	-c | --cases) [ $# -ge 2 ] || usage; cases=$2; shift 2 ;;
	-q | --quick) quick=1; shift ;;
	-h | --help) usage 0 ;;
	*) log "uplink.sh: unknown argument $1"; usage ;;
	esac
done
wanted=${wanted//,/ }
cases=${cases//,/ }
for s in $wanted; do
	case $s in leaf | nats | natsoff) ;; *) log "uplink.sh: unknown server $s"; usage ;; esac
done
for c in $cases; do
	[[ " $all_cases " == *" $c "* ]] || { log "uplink.sh: unknown case $c"; usage; }
done

# Workload sizes. Quick mode only checks that the script and every leaf
# work end to end; its numbers mean little.
if [ "$quick" = 1 ]; then
	rounds=${rounds:-1}
	msgs=50000
	requests=2000
	short_outage=1s
	long_outage=2s
else
	rounds=${rounds:-3}
	msgs=1000000
	requests=100000
	short_outage=2s
	long_outage=10s
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { log "uplink.sh: rounds must be a positive integer, got $rounds"; usage; }
# The reconnect interval both leaves get in the restore-equal case.
equal_reconnect=100ms

make_work uplink

# ---- servers ---------------------------------------------------------------

log "building natsbench, natsserver and canopy-leaf…"
build "$bin/natsbench" ./bench/natsbench
natsbench=$bin/natsbench
build "$bin/natsserver" ./bench/natsserver
nats_version=$("$bin/natsserver" -version)

declare -A label version
servers=()
for s in $wanted; do
	case $s in
	leaf)
		if ! build "$bin/canopy-leaf" ./cmd/canopy-leaf 2>"$work/leaf-build.log"; then
			log "skipping canopy-leaf: go build ./cmd/canopy-leaf failed:"
			sed 's/^/    /' "$work/leaf-build.log" >&2
			continue
		fi
		label[leaf]="canopy-leaf"
		version[leaf]="canopy-leaf built from commit $(leaf_commit), uplink with its defaults (reconnect_min 250ms, doubling up to reconnect_max 1s, each wait drawn from the upper half of its range)"
		;;
	nats)
		label[nats]="nats-server $nats_version leaf"
		version[nats]="nats-server $nats_version as a leaf (bench/natsserver -leaf-remote): its defaults (leafnode compression s2_auto, reconnect 1s + up to 1s jitter)"
		;;
	natsoff)
		label[natsoff]="nats-server $nats_version leaf, compression off"
		version[natsoff]="nats-server $nats_version as a leaf with leafnode compression off, as canopy-leaf's link always is; otherwise its defaults"
		;;
	esac
	servers+=("$s")
done
[ ${#servers[@]} -gt 0 ] || die "no leaf to measure"

# start_leaf SERVER CLIENT_PORT HUB_PORT DATADIR RECONNECT: RECONNECT is
# "default" or the interval both kinds of leaf get (restore-equal).
start_leaf() {
	local s=$1 port=$2 hub=$3 data=$4 reconnect=$5 conf
	local url="nats-leaf://127.0.0.1:$hub"
	local log_file="$work/logs/$tag_file-$s.log"
	case $s in
	leaf)
		# Always an explicit file, so that /etc/canopy/leaf.yaml, if the
		# machine has one, plays no part.
		conf="$data.yaml"
		echo "version: 1" >"$conf"
		if [ "$reconnect" != default ]; then
			printf 'uplink:\n  reconnect_min: %s\n  reconnect_max: %s\n' "$reconnect" "$reconnect" >>"$conf"
		fi
		start leaf_pid "$log_file" "$bin/canopy-leaf" run --config "$conf" \
			--nats-listen "127.0.0.1:$port" --mqtt-enabled=false --data-dir "$data" --uplink-urls "$url"
		;;
	nats | natsoff)
		local args=(-host 127.0.0.1 -port "$port" -leaf-remote "$url")
		[ "$s" = natsoff ] && args+=(-leaf-compression off)
		[ "$reconnect" != default ] && args+=(-leaf-reconnect "$reconnect")
		start leaf_pid "$log_file" "$bin/natsserver" "${args[@]}"
		;;
	esac
}

# ---- cases -----------------------------------------------------------------

# A case is a natsbench command line. %HUB% and %LEAF% stand for the client
# URLs of the hub and the leaf, %PROXY% and %HUBLEAF% for the proxy's and
# the hub's leafnode addresses. Restore cases run natsbench restore, which
# is the leaf's way to the hub, so it starts before the leaf.
declare -A case_args=(
	[up-16]="pubsub -subs 1 -size 16 -msgs $msgs -url %HUB% -pub-url %LEAF%"
	[up-256]="pubsub -subs 1 -size 256 -msgs $msgs -url %HUB% -pub-url %LEAF%"
	[down-16]="pubsub -subs 1 -size 16 -msgs $msgs -url %LEAF% -pub-url %HUB%"
	[down-256]="pubsub -subs 1 -size 256 -msgs $msgs -url %LEAF% -pub-url %HUB%"
	[reqrep]="reqrep -size 16 -requests $requests -url %LEAF% -responder-url %HUB%"
	[restore-short]="restore -outage $short_outage -url %HUB% -pub-url %LEAF% -listen %PROXY% -upstream %HUBLEAF%"
	[restore-long]="restore -outage $long_outage -url %HUB% -pub-url %LEAF% -listen %PROXY% -upstream %HUBLEAF%"
	[restore-equal]="restore -outage $long_outage -url %HUB% -pub-url %LEAF% -listen %PROXY% -upstream %HUBLEAF%"
)
declare -A case_reconnect=([restore-equal]=$equal_reconnect)

# Table rows: case, result key, description, unit, which way is better,
# target. The case "restore-any" pools the samples of every restore case.
rows=(
	"up-16|recv_msgs_per_s|leaf → hub, 16 B|msgs/s|higher|≥ 1.0×"
	"up-256|recv_msgs_per_s|leaf → hub, 256 B|msgs/s|higher|≥ 1.0×"
	"down-16|recv_msgs_per_s|hub → leaf, 16 B|msgs/s|higher|≥ 1.0×"
	"down-256|recv_msgs_per_s|hub → leaf, 256 B|msgs/s|higher|≥ 1.0×"
	"reqrep|p50_us|request/reply leaf → hub, p50|µs|lower|≤ 1.0×"
	"reqrep|p99_us|request/reply leaf → hub, p99|µs|lower|≤ 1.0×"
	"restore-short|restore_ms|link restored → first message, defaults, ${short_outage} outage|ms|lower|≤ 1,000 ms"
	"restore-long|restore_ms|link restored → first message, defaults, ${long_outage} outage|ms|lower|≤ 1,000 ms"
	"restore-equal|restore_ms|link restored → first message, both retry every ${equal_reconnect}, ${long_outage} outage|ms|lower|≤ 1,000 ms"
	"restore-any|link_ms|of which: leaf's connection accepted → first message (all restore runs)|ms|lower|"
)

declare -A samples # "case|key|server" → space-separated values, one per round

# run_case SERVER CASE ROUND
run_case() {
	local s=$1 c=$2 r=$3 out="" err_msg="" args row row_case key v
	local hub_port hub_leaf_port leaf_port proxy_port="" uplink_port
	local hub_pid leaf_pid bench_pid=""
	local tag="$c round $r/$rounds ${label[$s]}"
	tag_file="$c-$r"
	hub_port=$("$natsbench" free-port)
	hub_leaf_port=$("$natsbench" free-port)
	leaf_port=$("$natsbench" free-port)
	uplink_port=$hub_leaf_port
	local data="$work/data/$s-$c-$r"
	args=${case_args[$c]}
	if [[ $c == restore-* ]]; then
		proxy_port=$("$natsbench" free-port)
		uplink_port=$proxy_port
	fi
	args=${args//%HUB%/nats://127.0.0.1:$hub_port}
	args=${args//%LEAF%/nats://127.0.0.1:$leaf_port}
	args=${args//%PROXY%/127.0.0.1:$proxy_port}
	args=${args//%HUBLEAF%/127.0.0.1:$hub_leaf_port}

	# The hub does not advertise its leafnode address, so that a leaf
	# only ever uses the URL it was given (in restore cases, the proxy).
	# It logs connection events (not messages), so that a failed run
	# says whether it closed a slow consumer.
	start hub_pid "$work/logs/$tag_file-$s-hub.log" "$bin/natsserver" -log -host 127.0.0.1 -port "$hub_port" \
		-leafnodes-port "$hub_leaf_port" -leafnodes-no-advertise
	# shellcheck disable=SC2086 # args is a list of words by construction
	if ! "$natsbench" wait-listen -port "$hub_leaf_port" -pid "$hub_pid" -timeout 30s 2>"$work/natsbench.err" ||
		! "$natsbench" wait-listen -port "$hub_port" -pid "$hub_pid" -timeout 30s 2>"$work/natsbench.err"; then
		err_msg="hub: $(cat "$work/natsbench.err")"
	elif [ -n "$proxy_port" ]; then
		start bench_pid "$work/restore.out" "$natsbench" $args
		if ! "$natsbench" wait-listen -port "$proxy_port" -pid "$bench_pid" -timeout 30s 2>"$work/natsbench.err"; then
			err_msg="natsbench restore: $(cat "$work/natsbench.err" "$work/restore.out")"
		else
			start_leaf "$s" "$leaf_port" "$uplink_port" "$data" "${case_reconnect[$c]:-default}"
			if wait "$bench_pid"; then
				out=$(cat "$work/restore.out")
			else
				err_msg=$(cat "$work/restore.out")
			fi
		fi
	else
		start_leaf "$s" "$leaf_port" "$uplink_port" "$data" default
		if ! "$natsbench" wait-listen -port "$leaf_port" -pid "$leaf_pid" -timeout 30s 2>"$work/natsbench.err" ||
			! out=$("$natsbench" $args 2>"$work/natsbench.err"); then
			err_msg=$(cat "$work/natsbench.err")
		fi
	fi
	stop_all "natsbench:$bench_pid" "leaf:${leaf_pid:-}" "hub:$hub_pid"
	if [ -n "$stop_errors" ]; then
		err_msg="${err_msg:+$err_msg; }$stop_errors"
	fi
	rm -rf "$data" "$data.yaml"
	if [ -n "$err_msg" ]; then
		failures+=("$tag: $err_msg")
		log "  $tag: FAILED: $err_msg"
		if [ -s "$work/logs/$tag_file-$s.log" ]; then
			log "    last lines of the leaf's output:"
			tail -n 5 "$work/logs/$tag_file-$s.log" | sed 's/^/      /' >&2
		fi
		if grep -q 'Slow Consumer\|\[ERR\]' "$work/logs/$tag_file-$s-hub.log"; then
			log "    the hub's errors and slow consumers:"
			grep 'Slow Consumer\|\[ERR\]' "$work/logs/$tag_file-$s-hub.log" | head -n 5 | sed 's/^/      /' >&2
		fi
		return 0
	fi
	log "  $tag: $out"
	for row in "${rows[@]}"; do
		IFS='|' read -r row_case key _ <<<"$row"
		[ "$row_case" = "$c" ] || { [ "$row_case" = restore-any ] && [ -n "$proxy_port" ]; } || continue
		v=$(field "$key" "$out") || { failures+=("$tag: no $key in: $out"); continue; }
		samples["$row_case|$key|$s"]+="$v "
	done
}

# stop_all NAME:PID…: stops the processes of a run (an empty PID is
# skipped) and collects in stop_errors which servers had exited on their
# own. natsbench restore is expected to have exited.
stop_all() {
	local arg name pid
	stop_errors=""
	for arg in "$@"; do
		name=${arg%%:*} pid=${arg#*:}
		[ -n "$pid" ] || continue
		stop_pid "$pid"
		if [ -n "$stop_error" ] && [ "$name" != natsbench ]; then
			stop_errors+="${stop_errors:+; }$name: $stop_error"
		fi
	done
	pids=()
}

names=""
for s in "${servers[@]}"; do names+="${names:+; }${label[$s]}"; done
log "leaves: $names"
log "rounds: $rounds; throughput runs: $msgs messages; request/reply: $requests requests"
for c in $cases; do
	for ((r = 1; r <= rounds; r++)); do
		for s in "${servers[@]}"; do
			run_case "$s" "$c" "$r"
		done
	done
done

# ---- report ----------------------------------------------------------------

# The ratio columns: canopy-leaf against each nats-server leaf.
ratios=()
declare -A short=([leaf]="canopy-leaf" [nats]="nats-server" [natsoff]="nats-server, compression off")
if [ -n "${label[leaf]:-}" ]; then
	for s in "${servers[@]}"; do
		[ "$s" = leaf ] || ratios+=("leaf|$s")
	done
fi

command_line="bench/uplink.sh"
[ "$quick" = 1 ] && command_line="QUICK=1 $command_line"
[ "$rounds" != 3 ] && [ "$quick" != 1 ] && command_line="$command_line -r $rounds"
[ "$wanted" != "leaf nats natsoff" ] && command_line="$command_line -s '$wanted'"
[ "$cases" != "$all_cases" ] && command_line="$command_line -c '$cases'"

{
	echo "Command: \`$command_line\`, $(date -u '+%Y-%m-%d %H:%M UTC')."
	echo
	echo "- machine: $(machine)"
	echo "- hub: nats-server $nats_version (bench/natsserver: client port, leafnode listener without authentication, not advertised, connection events logged; otherwise defaults), a fresh one for every run"
	for s in "${servers[@]}"; do echo "- ${version[$s]}"; done
	echo "- $rounds round(s), leaves alternating run by run; $(number x "$msgs") messages per throughput run," \
		"$(number x "$requests") requests per latency run; restore cases: one cut per run, a message published about every 1 ms"
	echo
	header="| case | unit | better | target |"
	rule="| --- | --- | --- | --- |"
	for s in "${servers[@]}"; do header+=" ${label[$s]} |"; rule+=" ---: |"; done
	for p in "${ratios[@]}"; do
		IFS='|' read -r a b <<<"$p"
		header+=" ${short[$a]} ÷ ${short[$b]} |"
		rule+=" ---: |"
	done
	echo "$header"
	echo "$rule"
	for row in "${rows[@]}"; do
		IFS='|' read -r c key desc unit better target <<<"$row"
		if [ "$c" != restore-any ]; then
			[[ " $cases " == *" $c "* ]] || continue
		elif [[ " $cases " != *" restore-"* ]]; then
			continue
		fi
		line="| $desc | $unit | $better | $target |"
		declare -A med=()
		for s in "${servers[@]}"; do
			read -r -a vals <<<"${samples["$c|$key|$s"]:-}"
			if [ ${#vals[@]} -eq 0 ]; then
				line+=" failed |"
				continue
			fi
			med[$s]=$(median "${vals[@]}")
			if [ "$unit" = ms ]; then
				# Reconnect waits are random (jitter) and may fall either
				# side of a retry: the range says more than a spread.
				read -r lo hi <<<"$(extremes "${vals[@]}")"
				sp=""
				[ ${#vals[@]} -gt 1 ] && sp="$(number ms "$lo")–$(number ms "$hi")"
			else
				sp=$(spread "${vals[@]}")
			fi
			line+=" $(number "$unit" "${med[$s]}")${sp:+ ($sp)} |"
		done
		line+=$(ratio_cells)
		unset med
		echo "$line"
	done
	echo
	echo "Throughput and latency cells are medians over the rounds, with half the range as a share of the median;"
	echo "restore cells (ms) are medians with the lowest and highest run. Ratios divide medians measured in the same run."
}

if [ ${#failures[@]} -gt 0 ]; then
	log ""
	log "uplink.sh: ${#failures[@]} run(s) failed:"
	for f in "${failures[@]}"; do log "  $f"; done
	exit 1
fi
