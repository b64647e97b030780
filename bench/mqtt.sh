#!/usr/bin/env bash
# Measures canopy-leaf's MQTT broker side by side with Mosquitto (Debian's
# package) and nats-server's MQTT listener (the version in go.mod, through
# bench/natsserver), and prints a markdown table of medians and ratios on
# stdout. Progress and every run's raw result go to stderr. bench/doc.go
# says what each case measures.
#
# usage: bench/mqtt.sh [-r ROUNDS] [-s SERVERS] [-c CASES] [-n CONNS] [-q]
#
#   -r, --rounds N     rounds of every case (env ROUNDS, default 3)
#   -s, --servers LIST brokers to measure, from "leaf nats mosquitto" (env
#                      SERVERS, default all three; comma or space separated)
#   -c, --cases LIST   cases to run (env CASES, default all): qos0-1to1
#                      qos1-1to1 qos0-100to1 qos1-100to1 latency idle
#   -n, --conns N      connections of the idle case (env IDLE_CONNS,
#                      default 10000; 1000 in quick mode)
#   -q, --quick        smoke test of this script: 1 s runs, 1 round (env QUICK=1)
#
# Each run starts its broker fresh on free ports and stops it afterwards.
# Within a round the brokers take turns, so that a noisy neighbour on the
# machine hits them all alike. canopy-leaf is "not available" when it does
# not build or rejects its MQTT configuration (check-config).
#
# Exit status: 0 when every run succeeded, 1 otherwise (the table is still
# printed, with "failed" or "lost N" where a cell has no result), 2 on a
# bad command line.
set -euo pipefail

script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$script")/.."
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
# shellcheck source=bench/lib.sh
. bench/lib.sh

die() { log "mqtt.sh: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$script" >&2; exit "${1:-2}"; }

all_cases="qos0-1to1 qos1-1to1 qos0-100to1 qos1-100to1 latency idle"
rounds=${ROUNDS:-}
quick=${QUICK:-0}
wanted=${SERVERS:-leaf nats mosquitto}
cases=${CASES:-$all_cases}
conns=${IDLE_CONNS:-}
while [ $# -gt 0 ]; do
	case $1 in
	-r | --rounds) [ $# -ge 2 ] || usage; rounds=$2; shift 2 ;;
	-s | --servers) [ $# -ge 2 ] || usage; wanted=$2; shift 2 ;;
	-c | --cases) [ $# -ge 2 ] || usage; cases=$2; shift 2 ;;
	-n | --conns) [ $# -ge 2 ] || usage; conns=$2; shift 2 ;;
	-q | --quick) quick=1; shift ;;
	-h | --help) usage 0 ;;
	*) log "mqtt.sh: unknown argument $1"; usage ;;
	esac
done
wanted=${wanted//,/ }
cases=${cases//,/ }
for s in $wanted; do
	case $s in leaf | nats | mosquitto) ;; *) log "mqtt.sh: unknown server $s"; usage ;; esac
done
for c in $cases; do
	[[ " $all_cases " == *" $c "* ]] || { log "mqtt.sh: unknown case $c"; usage; }
done

# Workload sizes. Quick mode only checks that the script and every broker
# work end to end; its numbers mean little.
rate=2000 # latency: messages per second
if [ "$quick" = 1 ]; then
	rounds=${rounds:-1}
	duration=1s
	warmup=200
	conns=${conns:-1000}
else
	rounds=${rounds:-3}
	duration=10s
	warmup=1000
	conns=${conns:-10000}
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { log "mqtt.sh: rounds must be a positive integer, got $rounds"; usage; }
[[ $conns =~ ^[1-9][0-9]*$ ]] || { log "mqtt.sh: connections must be a positive integer, got $conns"; usage; }

work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-mqtt.XXXXXX")
bin=$work/bin
mkdir -p "$bin" "$work/logs" "$work/data"
server_pid=""
bench_pid=""
failures=()
cleanup() {
	local pid
	for pid in $server_pid $bench_pid; do kill -KILL "$pid" 2>/dev/null || true; done
	if [ ${#failures[@]} -gt 0 ]; then
		rm -rf "${work:?}/bin" "${work:?}/data"
		log "server logs kept in $work/logs"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the idle case's file descriptors and ports ----------------------------

# mqttbench (Go raises its own soft limit to the hard one) and the broker
# each need a descriptor per connection; Mosquitto takes the limit it is
# started with, this shell's.
if [[ " $cases " == *" idle "* ]]; then
	need=$((conns + 1024))
	if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need" ]; then
		hard=$(ulimit -Hn)
		if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
			die "the idle case needs $need open files, and the hard limit is $hard: raise it (limits.conf, or ulimit -Hn as root) or use -n"
		fi
		ulimit -Sn "$need"
	fi
	# Every connection to the broker's one port takes an ephemeral port of
	# its source address; beyond 80% of the range, spread them over more
	# loopback addresses.
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
	per_source=$(((hi - lo + 1) * 8 / 10))
	sources=$(((conns + per_source - 1) / per_source))
	[ "$sources" -le 254 ] || die "$conns connections need more than 254 source addresses"
fi

# ---- brokers ---------------------------------------------------------------

# leaf_config FILE NATS_PORT MQTT_PORT DATADIR CASE writes canopy-leaf's
# configuration. An explicit file, so that /etc/canopy/leaf.yaml, if the
# machine has one, plays no part. Like Mosquitto below, it is set not to
# drop for the load cases: by default a client's queue holds 1,024
# messages (mqtt.max_pending) and 8,192 QoS 1/2 messages wait for it
# (mqtt.max_inflight), and beyond that messages are dropped for it. The
# idle case keeps the defaults, which are what a device runs with (the
# queue's size is reserved per connection).
leaf_config() {
	cat >"$1" <<-EOF
		version: 1
		server_name: bench
		data_dir: $4
		nats:
		  listen: 127.0.0.1:$2
		mqtt:
		  listen: 127.0.0.1:$3
		  anonymous: always
	EOF
	if [ "$5" != idle ]; then
		printf '  max_pending: %s\n  max_inflight: 65535\n' "$leaf_max_pending" >>"$1"
	fi
}

# The queue a client of canopy-leaf may build up in the load cases.
leaf_max_pending=1000000

# mosquitto_config FILE PORT LOG: max_queued_messages 0 because by default
# Mosquitto drops QoS 0 messages for a subscriber once 1,000 are waiting
# to be written to it (and queues at most 1,000 QoS 1 and 2 messages). It
# runs as the current user: as root it would switch to its own, which
# cannot write the log here.
mosquitto_config() {
	cat >"$1" <<-EOF
		listener $2 127.0.0.1
		allow_anonymous true
		max_queued_messages 0
		set_tcp_nodelay true
		persistence false
		log_dest file $3
		user $(id -un)
	EOF
}

log "building mqttbench, natsbench, natsserver and canopy-leaf…"
build "$bin/mqttbench" ./bench/mqttbench
mqttbench=$bin/mqttbench
build "$bin/natsbench" ./bench/natsbench # free-port and wait-listen
natsbench=$bin/natsbench
paho_version=$(go list -m -f '{{.Version}}' github.com/eclipse/paho.mqtt.golang)

declare -A label version unavailable
servers=()
for s in $wanted; do
	case $s in
	leaf)
		label[leaf]="canopy-leaf"
		version[leaf]="canopy-leaf built from commit $(leaf_commit): NATS and MQTT listeners, anonymous MQTT clients allowed; load cases with mqtt.max_pending 1000000 and max_inflight 65535 (not to drop), idle with the defaults"
		if ! build "$bin/canopy-leaf" ./cmd/canopy-leaf 2>"$work/leaf-build.log"; then
			unavailable[leaf]="go build ./cmd/canopy-leaf failed"
			log "canopy-leaf not available: go build ./cmd/canopy-leaf failed:"
			sed 's/^/    /' "$work/leaf-build.log" >&2
		else
			# The configuration every run uses, with placeholder ports:
			# rejected means canopy-leaf has no MQTT broker (yet).
			leaf_config "$work/check.yaml" 1 2 "$work/data/check" check
			if ! "$bin/canopy-leaf" check-config --config "$work/check.yaml" >"$work/leaf-check.log" 2>&1; then
				unavailable[leaf]="canopy-leaf check-config rejects the mqtt section"
				log "canopy-leaf not available: check-config rejects its MQTT configuration:"
				sed 's/^/    /' "$work/leaf-check.log" >&2
			fi
		fi
		if [ -n "${unavailable[leaf]:-}" ]; then
			version[leaf]="canopy-leaf built from commit $(leaf_commit): not available (${unavailable[leaf]})"
		fi
		;;
	nats)
		build "$bin/natsserver" ./bench/natsserver
		nats_version=$("$bin/natsserver" -version)
		label[nats]="nats-server $nats_version MQTT"
		version[nats]="nats-server $nats_version (go.mod) through bench/natsserver -mqtt-port: MQTT listener without authentication, JetStream (which its MQTT needs) storing in a fresh directory, otherwise defaults"
		;;
	mosquitto)
		mosquitto_bin=/usr/sbin/mosquitto
		if [ ! -x "$mosquitto_bin" ]; then
			if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
				log "installing Debian's mosquitto…"
				apt-get update -qq >&2
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >&2
			else
				log "skipping Mosquitto: $mosquitto_bin is not installed and installing it needs root (apt-get install mosquitto)"
				continue
			fi
		fi
		# mosquitto -h prints its version first and exits with status 3.
		v=$("$mosquitto_bin" -h 2>&1 | head -n 1 || true)
		v=${v#mosquitto version }
		label[mosquitto]="Mosquitto $v"
		version[mosquitto]="Mosquitto $v (Debian package, $mosquitto_bin): max_queued_messages 0 (no drops), set_tcp_nodelay true, persistence false, otherwise defaults"
		;;
	esac
	servers+=("$s")
done
[ ${#servers[@]} -gt 0 ] || die "no broker to measure"

# start_server SERVER MQTT_PORT DATADIR: starts SERVER in the background,
# its output in $server_log, and sets server_pid.
start_server() {
	local s=$1 port=$2 data=$3
	mkdir -p "$data"
	case $s in
	leaf)
		leaf_config "$data.yaml" "$("$natsbench" free-port)" "$port" "$data" "$c"
		"$bin/canopy-leaf" run --config "$data.yaml" >"$server_log" 2>&1 &
		;;
	nats)
		"$bin/natsserver" -host 127.0.0.1 -port "$("$natsbench" free-port)" -mqtt-port "$port" -js-dir "$data/js" >"$server_log" 2>&1 &
		;;
	mosquitto)
		mosquitto_config "$data.conf" "$port" "$server_log.mosquitto"
		"$mosquitto_bin" -c "$data.conf" >"$server_log" 2>&1 &
		;;
	esac
	server_pid=$!
}

stop_server() {
	local pid=$server_pid
	server_pid=""
	stop_pid "$pid"
}

# ---- cases -----------------------------------------------------------------

declare -A case_args=(
	[qos0-1to1]="pubsub -qos 0 -pubs 1 -subs 1 -size 64 -duration $duration"
	[qos1-1to1]="pubsub -qos 1 -pubs 1 -subs 1 -size 64 -duration $duration"
	[qos0-100to1]="pubsub -qos 0 -pubs 100 -subs 1 -size 64 -duration $duration"
	[qos1-100to1]="pubsub -qos 1 -pubs 100 -subs 1 -size 64 -duration $duration"
	[latency]="latency -qos 0 -rate $rate -size 64 -duration $duration -warmup $warmup"
	[idle]="idle -conns $conns -sources ${sources:-1} -timeout 5m"
)

# Table rows: case, result key, description, unit, which way is better.
rows=(
	"qos0-1to1|recv_msgs_per_s|QoS 0, 1 publisher → 1 subscriber, 64 B|msgs/s|higher"
	"qos1-1to1|recv_msgs_per_s|QoS 1, 1 publisher → 1 subscriber, 64 B|msgs/s|higher"
	"qos0-100to1|recv_msgs_per_s|QoS 0, 100 publishers → 1 subscriber, 64 B|msgs/s|higher"
	"qos1-100to1|recv_msgs_per_s|QoS 1, 100 publishers → 1 subscriber, 64 B|msgs/s|higher"
	"latency|p50_us|latency p50, QoS 0, $(number x "$rate") msgs/s, 64 B|µs|lower"
	"latency|p99_us|latency p99, QoS 0, $(number x "$rate") msgs/s, 64 B|µs|lower"
	"idle|rss_before_kib|RSS, no connection|KiB|lower"
	"idle|rss_kib|RSS, $(number x "$conns") idle connections|KiB|lower"
	"idle|kib_per_conn|RSS per idle connection|KiB/conn|lower"
)

declare -A samples # "case|key|server" → space-separated values, one per round
declare -A invalid # "case|server" → runs that lost or duplicated messages
declare -A lost_n dup_n other_n

# run_idle URL: runs mqttbench idle and, once every connection is up,
# reads the broker's RSS; sets out (a result line) or err_msg.
run_idle() {
	local url=$1 before after rc=0
	if ! before=$(rss_kib "$server_pid"); then
		err_msg="the server exited before the run"
		return
	fi
	# shellcheck disable=SC2086 # case_args is a list of words by construction
	"$mqttbench" ${case_args[idle]} -url "$url" >"$work/idle.out" 2>"$work/mqttbench.err" &
	bench_pid=$!
	while ! grep -q 'state=connected' "$work/idle.out" && kill -0 "$bench_pid" 2>/dev/null; do
		sleep 0.1
	done
	if grep -q 'state=connected' "$work/idle.out" && after=$(rss_kib "$server_pid"); then
		kill -TERM "$bench_pid" 2>/dev/null || true
	fi
	wait "$bench_pid" || rc=$?
	bench_pid=""
	if [ "$rc" -ne 0 ] || [ -z "${after:-}" ]; then
		err_msg="mqttbench idle: status $rc: $(cat "$work/mqttbench.err" "$work/idle.out")"
		return
	fi
	out="idle conns=$conns rss_before_kib=$before rss_kib=$after kib_per_conn=$(awk -v a="$after" -v b="$before" -v n="$conns" 'BEGIN { printf "%.2f", (a - b) / n }') $(tail -n 1 "$work/idle.out" | cut -d' ' -f3-)"
}

# run_case SERVER CASE ROUND
run_case() {
	local s=$1 c=$2 r=$3 port out="" err_msg="" rc=0 row row_case key v
	local tag="$c round $r/$rounds ${label[$s]}"
	[ -z "${unavailable[$s]:-}" ] || return 0
	port=$("$natsbench" free-port)
	server_log="$work/logs/$s-$c-$r.log"
	local data="$work/data/$s-$c-$r"
	start_server "$s" "$port" "$data"
	local url="tcp://127.0.0.1:$port"
	if ! "$natsbench" wait-listen -port "$port" -pid "$server_pid" -timeout 30s 2>"$work/mqttbench.err"; then
		err_msg=$(cat "$work/mqttbench.err")
	elif [ "$c" = idle ]; then
		run_idle "$url"
	else
		# shellcheck disable=SC2086 # case_args is a list of words by construction
		out=$("$mqttbench" ${case_args[$c]} -url "$url" 2>"$work/mqttbench.err") || rc=$?
		if [ "$rc" -ne 0 ]; then
			err_msg=$(tr '\n' ' ' <"$work/mqttbench.err")
		fi
	fi
	stop_server
	if [ -n "$stop_error" ]; then
		err_msg="${err_msg:+$err_msg; }$stop_error"
	fi
	rm -rf "$data" "$data.yaml" "$data.conf"
	# A run that counted its messages and found some lost or duplicated
	# is a result, reported in its cell instead of a rate.
	if [ -n "$out" ] && field lost "$out" >/dev/null && [ "$rc" -ne 0 ]; then
		local lost unended dups reordered malformed unexpected
		lost=$(field lost "$out") unended=$(field unended "$out") dups=$(field dups "$out")
		reordered=$(field reordered "$out") malformed=$(field malformed "$out") unexpected=$(field unexpected "$out")
		invalid["$c|$s"]=$((${invalid["$c|$s"]:-0} + 1))
		lost_n["$c|$s"]=$((${lost_n["$c|$s"]:-0} + lost + unended))
		dup_n["$c|$s"]=$((${dup_n["$c|$s"]:-0} + dups))
		other_n["$c|$s"]=$((${other_n["$c|$s"]:-0} + reordered + malformed + unexpected))
		failures+=("$tag: $err_msg")
		log "  $tag: INVALID: $out"
		return 0
	fi
	if [ -n "$err_msg" ]; then
		failures+=("$tag: $err_msg")
		log "  $tag: FAILED: $err_msg"
		log "    last lines of the server's output:"
		{ tail -n 5 "$server_log" "$server_log.mosquitto" 2>/dev/null || true; } | sed 's/^/      /' >&2
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
for s in "${servers[@]}"; do names+="${names:+; }${label[$s]}${unavailable[$s]:+ (not available)}"; done
log "brokers: $names"
log "rounds: $rounds; throughput and latency runs: $duration each; idle: $(number x "$conns") connections"
for c in $cases; do
	for ((r = 1; r <= rounds; r++)); do
		for s in "${servers[@]}"; do
			run_case "$s" "$c" "$r"
		done
	done
done

# ---- report ----------------------------------------------------------------

# The ratio columns: canopy-leaf against each of the others, and
# nats-server against Mosquitto.
ratios=()
declare -A short=([leaf]="canopy-leaf" [nats]="nats-server" [mosquitto]="Mosquitto")
has() { [ -n "${label[$1]:-}" ]; }
if has leaf; then
	has mosquitto && ratios+=("leaf|mosquitto")
	has nats && ratios+=("leaf|nats")
fi
if has nats && has mosquitto; then ratios+=("nats|mosquitto"); fi

command_line="bench/mqtt.sh"
[ "$quick" = 1 ] && command_line="QUICK=1 $command_line"
[ "$rounds" != 3 ] && [ "$quick" != 1 ] && command_line="$command_line -r $rounds"
[ "$wanted" != "leaf nats mosquitto" ] && command_line="$command_line -s '$wanted'"
[ "$cases" != "$all_cases" ] && command_line="$command_line -c '$cases'"
if [ "$quick" = 1 ]; then
	[ "$conns" != 1000 ] && command_line="$command_line -n $conns"
else
	[ "$conns" != 10000 ] && command_line="$command_line -n $conns"
fi

{
	echo "Command: \`$command_line\`, $(date -u '+%Y-%m-%d %H:%M UTC')."
	echo
	echo "- machine: $(machine)"
	for s in "${servers[@]}"; do echo "- ${version[$s]}"; done
	echo "- load: bench/mqttbench on Paho Go $paho_version, MQTT 3.1.1, clean sessions, 20 messages in flight per publisher," \
		"every message accounted for; one topic shared by all publishers"
	echo "- $rounds round(s), brokers alternating run by run; each run a fresh broker;" \
		"throughput and latency runs publish for $duration, then drain"
	echo
	header="| case | unit | better |"
	rule="| --- | --- | --- |"
	for s in "${servers[@]}"; do header+=" ${label[$s]} |"; rule+=" ---: |"; done
	for p in "${ratios[@]}"; do
		IFS='|' read -r a b <<<"$p"
		header+=" ${short[$a]} ÷ ${short[$b]} |"
		rule+=" ---: |"
	done
	echo "$header"
	echo "$rule"
	for row in "${rows[@]}"; do
		IFS='|' read -r c key desc unit better <<<"$row"
		[[ " $cases " == *" $c "* ]] || continue
		line="| $desc | $unit | $better |"
		declare -A med=()
		for s in "${servers[@]}"; do
			if [ -n "${unavailable[$s]:-}" ]; then
				line+=" not available |"
				continue
			fi
			if [ -n "${invalid["$c|$s"]:-}" ]; then
				cell=""
				[ "${lost_n["$c|$s"]}" -gt 0 ] && cell+="lost $(number x "${lost_n["$c|$s"]}")"
				[ "${dup_n["$c|$s"]}" -gt 0 ] && cell+="${cell:+, }dup $(number x "${dup_n["$c|$s"]}")"
				[ "${other_n["$c|$s"]}" -gt 0 ] && cell+="${cell:+, }$(number x "${other_n["$c|$s"]}") out of order or altered"
				[ "$rounds" -gt 1 ] && cell+=" (${invalid["$c|$s"]} of $rounds runs)"
				line+=" $cell |"
				continue
			fi
			read -r -a vals <<<"${samples["$c|$key|$s"]:-}"
			median_cell "$s" "$unit" "${vals[@]}"
		done
		line+=$(ratio_cells)
		unset med
		echo "$line"
	done
	echo
	echo "Cells are medians over the rounds, with half the range as a share of the median;"
	echo "ratios divide medians measured in the same run. \"lost N\" replaces the figure of a case"
	echo "in which some run lost N messages (N summed over those runs)."
}

if [ ${#failures[@]} -gt 0 ]; then
	log ""
	log "mqtt.sh: ${#failures[@]} run(s) failed:"
	for f in "${failures[@]}"; do log "  $f"; done
	exit 1
fi
