#!/usr/bin/env bash
# Measures our echo_server side by side with the plain-C reference on the
# same lws (c/echo_server.c), the peers of ../shared/bench (raw TCP floor,
# tokio-tungstenite, fastwebsockets) and, over TLS, C against ours, all in
# one run and interleaved over rounds; then writes BENCHMARKS.md.
#
# usage: bench/compare.sh [--rounds N] [--quick] [--out FILE]
#   --quick   fewer modes and one round (a smoke run, a few minutes)
# env: SHARED (../shared), as ../shared/bench/run.sh (CLIENT_CPUS, ...);
#      PLAIN_RESULTS=FILE reuses the plain-WebSocket RESULT lines of an
#      earlier run (to regenerate the rest of the report).
# Every run is bounded by its mode's count or seconds; servers are started
# and stopped by ../shared/bench/run.sh, by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${SHARED:-$root/../shared}
rounds=2
quick=0
out=$root/BENCHMARKS.md
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--quick) quick=1; rounds=1; shift ;;
	--out) out=$2; shift 2 ;;
	-h | --help) sed -n '2,12p' "$0"; exit 0 ;;
	*) echo "compare.sh: unexpected $1" >&2; exit 64 ;;
	esac
done

cd "$root"
cargo build --release -q --examples
rel=$root/target/release
c_echo=$rel/lws-c-echo-server
ours=$rel/examples/echo_server
export CARGO_TARGET_DIR=${PEERBENCH_TARGET:-/tmp/peerbench/target}
cargo build --release -q --manifest-path "$shared/bench/Cargo.toml"

results=$(mktemp -d /tmp/lws-rs-bench.XXXXXX)
modes="rtt:64:20000:2000 rtt:1024:20000:2000 rtt:65536:2000:200 rtt:1048576:200:20
 tp:64:1:16:3 tp:64:10:16:3 tp:64:100:16:3 tp:64:1000:4:3 tp:1024:100:16:3"
[ "$quick" = 1 ] && modes="rtt:64:5000:500 rtt:1024:5000:500 rtt:65536:500:50 tp:64:100:16:2"

if [ -n "${PLAIN_RESULTS:-}" ]; then
	cp "$PLAIN_RESULTS" "$results/plain.txt"
else
	echo "bench: plain WebSocket, $rounds rounds -> $results/plain.txt" >&2
	# shellcheck disable=SC2086
	"$shared/bench/compare.sh" --rounds "$rounds" --modes "$(echo $modes)" --out "$results/plain.txt" \
		c-lws "$c_echo --port {PORT}" \
		lws-rs "$ours --port {PORT}" \
		--raw raw-tcp '{BIN}/raw-tcp-echo {PORT}' \
		tokio-tungstenite '{BIN}/tokio-tungstenite-echo {PORT}' \
		fastwebsockets '{BIN}/fastwebsockets-echo {PORT}' >/dev/null
fi

# Idle connections: the C reference and ours, RSS per connection.
# 50,000 wanted; each side needs one fd per connection, and a process
# cannot raise its hard RLIMIT_NOFILE without CAP_SYS_RESOURCE.
hard=$(ulimit -Hn)
idle=50000
[ "$hard" != unlimited ] && [ "$hard" -lt $((idle + 1000)) ] && idle=$((hard - 1000))
[ "$quick" = 1 ] && idle=5000
echo "bench: $idle idle connections -> $results/idle.txt" >&2
: >"$results/idle.txt"
for name in c-lws lws-rs; do
	cmd="$c_echo --port {PORT}"
	[ "$name" = lws-rs ] && cmd="$ours --port {PORT}"
	NO_BUILD=1 "$shared/bench/run.sh" "$name" "$cmd" "conn:$idle" >>"$results/idle.txt" || true
done

# TLS: wsload speaks plain ws only, so both sides are measured with our
# latency and throughput examples (wss://, certificate not checked).
tls=$results/tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
	-keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null
wsload=$CARGO_TARGET_DIR/release/wsload
: >"$results/tls.txt"
for r in $(seq 1 "$rounds"); do
	for name in c-lws lws-rs; do
		server=$c_echo
		[ "$name" = lws-rs ] && server=$ours
		port=$("$wsload" freeport)
		"$server" --port "$port" --tls-cert "$tls/cert.pem" --tls-key "$tls/key.pem" >/dev/null 2>&1 &
		pid=$!
		"$wsload" waitport --port "$port" --pid "$pid" --timeout 30 2>/dev/null
		url=wss://127.0.0.1:$port/
		for size in 64 1024 65536; do
			"$rel/examples/latency" "$url" --insecure --name "$name" --size "$size" \
				--count 5000 --warmup 500 | grep '^RESULT' >>"$results/tls.txt" || true
		done
		"$rel/examples/throughput" "$url" --insecure --name "$name" --connections 100 \
			--window 16 --secs 3 | grep '^RESULT' >>"$results/tls.txt" || true
		kill -TERM "$pid"
		wait "$pid" || true
	done
done

python3 "$here/report.py" --rounds "$rounds" --plain "$results/plain.txt" \
	--idle "$results/idle.txt" --tls "$results/tls.txt" \
	--command "bench/compare.sh $*" >"$out"
echo "bench: wrote $out (raw lines in $results)" >&2
