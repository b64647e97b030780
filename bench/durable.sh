#!/usr/bin/env bash
# Measures canopy-leaf's store-and-forward streams side by side with
# nats-server's JetStream (the version in go.mod, which canopy-hub embeds)
# and prints markdown tables of medians and ratios on stdout. Progress and
# every run's raw result go to stderr. docs/benchmarks.md ("Store and
# forward") says what each case measures and how to read the tables.
#
# usage: bench/durable.sh [-r ROUNDS] [-c CASES] [-q]
#
#   -r, --rounds N    rounds of every case (env ROUNDS, default 3)
#   -c, --cases LIST  cases to run (env CASES, default all; comma or space
#                     separated): ingest drain drain-cold rss
#   -q, --quick       smoke test of this script: small counts, 1 round
#                     (env QUICK=1)
#
# Sizes (env, to record a smaller run honestly labelled): INGEST_MSGS
# (default 100,000; quick 5,000), DRAIN_MSGS (1,000,000; quick 20,000),
# RSS_MIB (1024; quick 50).
#
#   ingest  acknowledged publishes of 128 B, 256 in flight, into a fresh
#           canopy-leaf stream, a nats-server JetStream file stream with
#           sync_interval: always, and one with nats-server's defaults;
#           msgs/s and the bytes the server process wrote to disk per
#           message (/proc/PID/io write_bytes)
#   drain   a backlog of 128 B messages stored on a leaf whose link to the
#           hub is down, then the link opened: time until the hub stream
#           holds all of it; canopy-leaf against a stock nats-server leaf
#           whose hub stream sources the leaf's stream, and canopy-leaf
#           again with a window of 4,096 instead of its default 256. The
#           link worked (one message crossed) before it was cut
#   drain-cold  the same with the link down from the start: the hub was
#           never reachable before
#   rss     canopy-leaf's memory holding a backlog of RSS_MIB MiB of 1 KiB
#           payloads with its link down (VmHWM, VmRSS from /proc/PID/status)
#
# Every run starts fresh servers on free ports and stops them afterwards;
# within a round the servers take turns, so that a noisy neighbour hits
# them all alike.
#
# Exit status: 0 when every run succeeded, 1 otherwise (the tables are still
# printed, with "failed" where a cell has no result), 2 on a bad command line.
set -euo pipefail

script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$script")/.."
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
# shellcheck source=bench/lib.sh
. bench/lib.sh

die() { log "durable.sh: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$script" >&2; exit "${1:-2}"; }

all_cases="ingest drain drain-cold rss"
rounds=${ROUNDS:-}
quick=${QUICK:-0}
cases=${CASES:-$all_cases}
while [ $# -gt 0 ]; do
	case $1 in
	-r | --rounds) [ $# -ge 2 ] || usage; rounds=$2; shift 2 ;;
	-c | --cases) [ $# -ge 2 ] || usage; cases=$2; shift 2 ;;
	-q | --quick) quick=1; shift ;;
	-h | --help) usage 0 ;;
	*) log "durable.sh: unknown argument $1"; usage ;;
	esac
done
cases=${cases//,/ }
for c in $cases; do
	[[ " $all_cases " == *" $c "* ]] || { log "durable.sh: unknown case $c"; usage; }
done

# Workload sizes. Quick mode only checks that the script and every server
# work end to end; its numbers mean little.
if [ "$quick" = 1 ]; then
	rounds=${rounds:-1}
	ingest_msgs=${INGEST_MSGS:-5000}
	drain_msgs=${DRAIN_MSGS:-20000}
	rss_mib=${RSS_MIB:-50}
else
	rounds=${rounds:-3}
	ingest_msgs=${INGEST_MSGS:-100000}
	drain_msgs=${DRAIN_MSGS:-1000000}
	rss_mib=${RSS_MIB:-1024}
fi
for v in rounds ingest_msgs drain_msgs rss_mib; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { log "durable.sh: $v must be a positive integer, got ${!v}"; usage; }
done
size=128
inflight=256
rss_size=1024
rss_msgs=$((rss_mib * 1024 * 1024 / rss_size))
# The stream window of the second canopy-leaf in the drain cases: how far
# the default (1024) limits a drain.
wide_window=4096

make_work durable

# ---- servers ---------------------------------------------------------------

log "building natsbench, durablebench and canopy-leaf…"
build "$bin/natsbench" ./bench/natsbench
natsbench=$bin/natsbench
build "$bin/durablebench" ./bench/durablebench
durablebench=$bin/durablebench
build "$bin/canopy-leaf" ./cmd/canopy-leaf
nats_version=$("$durablebench" serve -version)

declare -A label=(
	[leaf]="canopy-leaf"
	[leafw]="canopy-leaf, window: $wide_window"
	[always]="nats-server $nats_version, sync_interval: always"
	[default]="nats-server $nats_version, defaults"
	[natsleaf]="nats-server $nats_version leaf"
)

# leaf_conf FILE CLIENT_PORT DATADIR UPLINK_PORT [WINDOW]: a canopy-leaf
# with one stream, sensors on sensors.>, sent to the hub's TELEMETRY
# stream in the JetStream domain "hub"; its uplink retries every 100 ms,
# as the nats-server leaf's does. Always an explicit file, so that
# /etc/canopy/leaf.yaml, if the machine has one, plays no part.
leaf_conf() {
	cat >"$1" <<-EOF
		version: 1
		server_name: pi-001
		data_dir: "$3"
		nats:
		  listen: "127.0.0.1:$2"
		mqtt:
		  enabled: false
		uplink:
		  urls: ["nats-leaf://127.0.0.1:$4"]
		  reconnect_min: 100ms
		  reconnect_max: 100ms
		streams:
		  - name: sensors
		    subjects: ["sensors.>"]
		    upstream:
		      domain: hub
	EOF
	[ -z "${5:-}" ] || echo "    window: $5" >>"$1"
}

# nats_conf FILE CLIENT_PORT STORE_DIR EXTRA…: a nats-server configuration
# with JetStream; EXTRA lines go into its jetstream block, except lines
# starting with "leafnodes", which go at the top level.
nats_conf() {
	local file=$1 port=$2 dir=$3 l
	shift 3
	{
		echo "listen: 127.0.0.1:$port"
		echo "server_name: bench-$port"
		echo "jetstream {"
		echo "  store_dir: \"$dir\""
		for l in "$@"; do [[ $l == leafnodes* ]] || echo "  $l"; done
		echo "}"
		for l in "$@"; do [[ $l != leafnodes* ]] || echo "$l"; done
	} >"$file"
}

# ---- cases -----------------------------------------------------------------

declare -A samples # "case|key|server" → space-separated values, one per round

# record CASE SERVER OUT KEYS…: files the KEYS of a result line OUT.
record() {
	local c=$1 s=$2 out=$3 key v
	shift 3
	for key in "$@"; do
		v=$(field "$key" "$out") || { failures+=("$c $s: no $key in: $out"); continue; }
		samples["$c|$key|$s"]+="$v "
	done
}

# fail TAG LOGFILE ERR: records and reports a failed run.
fail() {
	local tag=$1 log_file=$2 err=$3
	failures+=("$tag: $err")
	log "  $tag: FAILED: $err"
	if [ -s "$log_file" ]; then
		log "    last lines of the server's output:"
		tail -n 5 "$log_file" | sed 's/^/      /' >&2
	fi
}

# run_ingest SERVER ROUND: a fresh server, INGEST_MSGS acknowledged
# publishes, the server's disk writes per message.
run_ingest() {
	local s=$1 r=$2 port data conf out="" err="" pid="" stream_args=()
	local tag="ingest round $r/$rounds ${label[$s]}" log_file="$work/logs/ingest-$r-$s.log"
	port=$("$natsbench" free-port)
	data="$work/data/ingest-$s-$r"
	conf="$data.conf"
	case $s in
	leaf)
		# Nobody listens on the uplink's port: the stream only stores.
		leaf_conf "$conf" "$port" "$data" "$("$natsbench" free-port)"
		start pid "$log_file" "$bin/canopy-leaf" run --config "$conf"
		;;
	always | default)
		local extra=()
		[ "$s" = always ] && extra+=("sync_interval: always")
		nats_conf "$conf" "$port" "$data" "${extra[@]}"
		start pid "$log_file" "$durablebench" serve -config "$conf"
		stream_args=(-stream BENCH)
		;;
	esac
	if ! "$natsbench" wait-listen -port "$port" -pid "$pid" -timeout 30s 2>"$work/err"; then
		err=$(cat "$work/err")
	elif ! out=$("$durablebench" ingest -url "nats://127.0.0.1:$port" -subject sensors.bench -msgs "$ingest_msgs" \
		-size "$size" -inflight "$inflight" -pid "$pid" "${stream_args[@]}" 2>"$work/err"); then
		err=$(cat "$work/err")
	fi
	stop_all "server:$pid"
	err=${err:-$stop_errors}
	rm -rf "$data" "$conf"
	if [ -n "$err" ]; then
		fail "$tag" "$log_file" "$err"
		return 0
	fi
	log "  $tag: $out"
	record ingest "$s" "$out" msgs_per_s write_bytes_per_msg
}

# run_drain CASE SERVER ROUND: a fresh hub and leaf, the leaf's link
# through durablebench drain's proxy, closed while the backlog is
# published; CASE drain-cold keeps it closed from the start.
run_drain() {
	local c=$1 s=$2 r=$3 hub_port hub_leaf_port leaf_port proxy_port out="" err=""
	local hub_pid="" leaf_pid="" drain_args=()
	local tag="$c round $r/$rounds ${label[$s]}" log_file="$work/logs/$c-$r-$s.log"
	local data="$work/data/$c-$s-$r"
	mkdir -p "$data"
	hub_port=$("$natsbench" free-port)
	hub_leaf_port=$("$natsbench" free-port)
	leaf_port=$("$natsbench" free-port)
	proxy_port=$("$natsbench" free-port)
	# The hub does not advertise its leafnode address, so that a leaf only
	# ever uses the URL it was given: the proxy.
	nats_conf "$data/hub.conf" "$hub_port" "$data/hub" "domain: hub" \
		"leafnodes { listen: \"127.0.0.1:$hub_leaf_port\", no_advertise: true }"
	start hub_pid "$work/logs/$c-$r-$s-hub.log" "$durablebench" serve -config "$data/hub.conf"
	case $s in
	leaf | leafw)
		local window=""
		[ "$s" = leafw ] && window=$wide_window
		leaf_conf "$data/leaf.yaml" "$leaf_port" "$data/leaf" "$proxy_port" ${window:+"$window"}
		start leaf_pid "$log_file" "$bin/canopy-leaf" run --config "$data/leaf.yaml"
		drain_args=(-hub-subjects 'telemetry.>')
		;;
	natsleaf)
		nats_conf "$data/leaf.conf" "$leaf_port" "$data/leaf" "domain: leaf" \
			"leafnodes { reconnect: \"100ms\", remotes: [ { url: \"nats-leaf://127.0.0.1:$proxy_port\" } ] }"
		start leaf_pid "$log_file" "$durablebench" serve -config "$data/leaf.conf"
		drain_args=(-leaf-stream LEAF -hub-source LEAF@leaf)
		;;
	esac
	if ! "$natsbench" wait-listen -port "$hub_port" -pid "$hub_pid" -timeout 30s 2>"$work/err" ||
		! "$natsbench" wait-listen -port "$hub_leaf_port" -pid "$hub_pid" -timeout 30s 2>>"$work/err"; then
		err="hub: $(cat "$work/err")"
	elif ! "$natsbench" wait-listen -port "$leaf_port" -pid "$leaf_pid" -timeout 30s 2>"$work/err"; then
		err="leaf: $(cat "$work/err")"
	elif ! out=$("$durablebench" drain -leaf-url "nats://127.0.0.1:$leaf_port" -hub-url "nats://127.0.0.1:$hub_port" \
		-listen "127.0.0.1:$proxy_port" -upstream "127.0.0.1:$hub_leaf_port" -subject sensors.bench \
		-msgs "$drain_msgs" -size "$size" -inflight "$inflight" -warm="$([ "$c" = drain ] && echo true || echo false)" \
		"${drain_args[@]}" 2>"$work/err"); then
		err=$(cat "$work/err")
	fi
	stop_all "leaf:$leaf_pid" "hub:$hub_pid"
	err=${err:-$stop_errors}
	rm -rf "$data"
	if [ -n "$err" ]; then
		fail "$tag" "$log_file" "$err"
		return 0
	fi
	log "  $tag: $out"
	record "$c" "$s" "$out" msgs_per_s first_ms after_first_msgs_per_s fill_msgs_per_s
}

# run_rss ROUND: canopy-leaf with its link down takes RSS_MIB MiB of
# acknowledged 1 KiB messages; its memory afterwards.
run_rss() {
	local r=$1 port data conf out="" err="" pid=""
	local tag="rss round $r/$rounds canopy-leaf" log_file="$work/logs/rss-$r-leaf.log"
	port=$("$natsbench" free-port)
	data="$work/data/rss-$r"
	conf="$data.yaml"
	leaf_conf "$conf" "$port" "$data" "$("$natsbench" free-port)"
	start pid "$log_file" "$bin/canopy-leaf" run --config "$conf"
	if ! "$natsbench" wait-listen -port "$port" -pid "$pid" -timeout 30s 2>"$work/err"; then
		err=$(cat "$work/err")
	elif ! out=$("$durablebench" ingest -url "nats://127.0.0.1:$port" -subject sensors.bench -msgs "$rss_msgs" \
		-size "$rss_size" -inflight "$inflight" -pid "$pid" 2>"$work/err"); then
		err=$(cat "$work/err")
	fi
	stop_all "server:$pid"
	err=${err:-$stop_errors}
	rm -rf "$data" "$conf"
	if [ -n "$err" ]; then
		fail "$tag" "$log_file" "$err"
		return 0
	fi
	log "  $tag: $out"
	record rss leaf "$out" vmhwm_kib vmrss_kib rssanon_kib rssfile_kib msgs_per_s
}

# stop_all NAME:PID…: stops the processes of a run (an empty PID is
# skipped) and collects in stop_errors which servers had exited on their
# own.
stop_all() {
	local arg name pid
	stop_errors=""
	for arg in "$@"; do
		name=${arg%%:*} pid=${arg#*:}
		[ -n "$pid" ] || continue
		stop_pid "$pid"
		[ -z "$stop_error" ] || stop_errors+="${stop_errors:+; }$name: $stop_error"
	done
	pids=()
}

log "rounds: $rounds; ingest: $(number x "$ingest_msgs") msgs; drain: $(number x "$drain_msgs") msgs; rss: $rss_mib MiB"
for c in $cases; do
	for ((r = 1; r <= rounds; r++)); do
		case $c in
		ingest) for s in leaf always default; do run_ingest "$s" "$r"; done ;;
		drain | drain-cold) for s in leaf leafw natsleaf; do run_drain "$c" "$s" "$r"; done ;;
		rss) run_rss "$r" ;;
		esac
	done
done

# ---- report ----------------------------------------------------------------

# cells CASE KEY UNIT SERVERS…: the median cells of a row, into line and
# med. Times (ms) show the lowest and highest run instead of a spread: the
# time to the first message depends on retry schedules, and a run that
# waited for one is far from the others.
# shellcheck disable=SC2034 # med is read by ratio_cells
cells() {
	local c=$1 key=$2 unit=$3 s vals lo hi
	shift 3
	for s in "$@"; do
		read -r -a vals <<<"${samples["$c|$key|$s"]:-}"
		if [ "$unit" != ms ] || [ ${#vals[@]} -lt 2 ]; then
			median_cell "$s" "$unit" "${vals[@]}"
			continue
		fi
		med[$s]=$(median "${vals[@]}")
		read -r lo hi <<<"$(extremes "${vals[@]}")"
		line+=" $(number ms "${med[$s]}") ($(number ms "$lo")–$(number ms "$hi")) |"
	done
}

# kib_to_mib / one decimal, for byte counts
decimal() { awk -v x="$1" -v d="${2:-1}" 'BEGIN { printf "%.1f", x / d }'; }

command_line="bench/durable.sh"
[ "$quick" = 1 ] && command_line="QUICK=1 $command_line"
[ "$rounds" != 3 ] && [ "$quick" != 1 ] && command_line="$command_line -r $rounds"
[ "$cases" != "$all_cases" ] && command_line="$command_line -c '$cases'"
for v in INGEST_MSGS DRAIN_MSGS RSS_MIB; do
	[ -z "${!v:-}" ] || command_line="$v=${!v} $command_line"
done

{
	echo "Command: \`$command_line\`, $(date -u '+%Y-%m-%d %H:%M UTC'), canopy-leaf built from commit $(leaf_commit)."
	echo
	echo "- machine: $(machine)"
	echo "- nats-server $nats_version (the version in go.mod, run from a configuration file by bench/durablebench serve), a fresh one for every run; canopy-leaf with its defaults but for an uplink retrying every 100 ms"
	echo "- $rounds round(s), servers alternating run by run; payloads $size B (rss: $rss_size B), $inflight publishes in flight (nats.go jetstream PublishAsync)"
	if [[ " $cases " == *" ingest "* ]]; then
		echo
		echo "Durable ingest, $(number x "$ingest_msgs") acknowledged publishes into a fresh stream:"
		echo
		echo "| case | unit | better | ${label[leaf]} | ${label[always]} | ${label[default]} | leaf ÷ always (target) | leaf ÷ defaults (target) |"
		echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
		declare -A med=()
		line="| acknowledged publishes, $size B, $inflight in flight | msgs/s | higher |"
		cells ingest msgs_per_s x leaf always default
		ratios=("leaf|always" "leaf|default")
		read -r a b <<<"$(ratio_cells | tr -d '|')"
		echo "$line $a (≥ 10×) | $b (≥ 0.5×) |"
		med=()
		line="| bytes written to disk per stored message (/proc/PID/io write_bytes) | B/msg | lower |"
		cells ingest write_bytes_per_msg x leaf always default
		read -r a b <<<"$(ratio_cells | tr -d '|')"
		echo "$line $a (≤ 1.0×) | $b (≤ 1.0×) |"
		unset med
	fi
	if [[ " $cases " == *" drain"* ]]; then
		echo
		echo "Drain of a backlog of $(number x "$drain_msgs") messages to the hub, timed from the link opening:"
		echo
		echo "| case | unit | better | ${label[leaf]} | ${label[leafw]} | ${label[natsleaf]} | leaf ÷ nats-server leaf | leaf, window $wide_window ÷ nats-server leaf | target |"
		echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
		ratios=("leaf|natsleaf" "leafw|natsleaf")
		for c in drain drain-cold; do
			[[ " $cases " == *" $c "* ]] || continue
			if [ "$c" = drain ]; then
				what="link cut after one message crossed it"
			else
				what="link down from the start (hub never reached before)"
			fi
			for row in "msgs_per_s|x|higher|$what: link opened → hub stream holds every message|≥ 1.0×" \
				"first_ms|ms|lower|of which: link opened → first message in the hub stream|" \
				"after_first_msgs_per_s|x|higher|of which: first → last message in the hub stream|" \
				"fill_msgs_per_s|x|higher|for reference: acknowledged publishes building the backlog|"; do
				IFS='|' read -r key unit better desc target <<<"$row"
				declare -A med=()
				u=msgs/s
				[ "$unit" = ms ] && u=ms
				line="| $desc | $u | $better |"
				cells "$c" "$key" "$unit" leaf leafw natsleaf
				echo "$line$(ratio_cells) $target |"
				unset med
			done
		done
	fi
	if [[ " $cases " == *" rss "* ]]; then
		echo
		echo "canopy-leaf's memory with a backlog of $rss_mib MiB ($(number x "$rss_msgs") messages of $rss_size B) stored with its link down:"
		echo
		echo "| measure | MiB | target |"
		echo "| --- | ---: | --- |"
		for row in "vmhwm_kib|peak resident memory (VmHWM)|≤ 64 MiB" "vmrss_kib|resident memory at the end (VmRSS)|≤ 64 MiB" \
			"rssanon_kib|of which anonymous (RssAnon: heap, stacks)|" "rssfile_kib|of which file pages mapped (RssFile: the binary, the store's memory map)|"; do
			IFS='|' read -r key desc target <<<"$row"
			read -r -a vals <<<"${samples["rss|$key|leaf"]:-}"
			if [ ${#vals[@]} -eq 0 ]; then
				echo "| $desc | failed | $target |"
				continue
			fi
			m=$(median "${vals[@]}")
			sp=$(spread "${vals[@]}")
			echo "| $desc | $(decimal "$m" 1024)${sp:+ ($sp)} | $target |"
		done
	fi
	echo
	echo "Cells are medians over the rounds, with half the range as a share of the median (times in ms: with the lowest and highest run)."
	echo "Ratios divide medians measured in the same run."
}

if [ ${#failures[@]} -gt 0 ]; then
	log ""
	log "durable.sh: ${#failures[@]} run(s) failed:"
	for f in "${failures[@]}"; do log "  $f"; done
	exit 1
fi
