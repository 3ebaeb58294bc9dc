#!/usr/bin/env bash
# Runs the Autobahn TestSuite (wstest) against lws-rs, both ways, on 127.0.0.1:
#   server side: wstest -m fuzzingclient  -> examples/autobahn_server
#   client side: examples/autobahn_client -> wstest -m fuzzingserver
# then checks each side's outcomes against autobahn/expected-results.json
# (compare.py): any FAILED case, or any case worse than expected, fails.
#
# Usage: autobahn/run.sh [--side server|client|both] [--cases quick|full|LIST]
#                        [--deflate] [--write-expected]
#   --side       which side(s) to run (default both)
#   --cases      quick: a few seconds per side (no 9.* performance cases, no
#                6.4.* timing cases); full (default): every case the specs
#                select; LIST: wstest patterns, comma-separated ("2.*,9.1.1")
#   --deflate    also run 12.* and 13.* (permessage-deflate; the examples
#                must offer it first: see their "// deflate:" lines). Same as
#                AUTOBAHN_DEFLATE=1.
#   --write-expected  make this run's outcomes the expected ones
#
# It makes a Python 2.7 virtualenv with the pinned wstest (requirements.txt)
# under autobahn/.venv (git-ignored) on first use; reports go to
# autobahn/reports/{server,client}/ (git-ignored; index.html per side).
# Python 2.7 comes from $PYTHON2, else pyenv's 2.7.18.
# Every process it starts is ended by PID on exit; every wait has a timeout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
venv=$here/.venv
reports=$here/reports
agent=lws-rs

# Cases 12.* and 13.* need permessage-deflate, which the examples leave off
# for now (their "// deflate:" lines): excluded unless this is 1 (or
# --deflate).
DEFLATE=${AUTOBAHN_DEFLATE:-0}
# The quick set: everything but the slow performance (9.*) and timing
# (6.4.*) cases, plus one 64 KiB message each way. (wstest patterns: '*'
# is any run of characters, everything else is literal.)
QUICK_CASES=1.*,2.*,3.*,4.*,5.*,$(printf '6.%s.*,' 1 2 3 {5..23})7.*,9.1.1,9.2.1,10.*,11.*
# Bounds on each wait (seconds).
START_TIMEOUT=60 # a server printing its port (wstest's start takes seconds)
RUN_TIMEOUT= # one side's whole run: AUTOBAHN_TIMEOUT, else 900 (2400 with 12.*/13.*)
STOP_TIMEOUT=10  # a process ending after SIGTERM

side=both
cases=full
write_expected=
while [ $# -gt 0 ]; do
	case $1 in
	--side | --cases)
		if [ $# -lt 2 ]; then
			echo "run.sh: $1 needs a value (--help)" >&2
			exit 2
		fi
		if [ "$1" = --side ]; then side=$2; else cases=$2; fi
		shift 2
		;;
	--deflate)
		DEFLATE=1
		shift
		;;
	--write-expected)
		write_expected=--write-expected
		shift
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument '$1' (--help)" >&2
		exit 2
		;;
	esac
done
case $side in server | client | both) ;; *)
	echo "run.sh: --side is server, client or both" >&2
	exit 2
	;;
esac
[ -n "$cases" ] || {
	echo "run.sh: --cases needs quick, full or a pattern list" >&2
	exit 2
}
case $cases in quick) cases=$QUICK_CASES ;; full) cases='*' ;; esac
if [ "$DEFLATE" = 1 ]; then
	RUN_TIMEOUT=${AUTOBAHN_TIMEOUT:-2400}
else
	RUN_TIMEOUT=${AUTOBAHN_TIMEOUT:-900}
fi

say() { printf 'autobahn: %s\n' "$*"; }

# ---------------------------------------------------------------- processes

pids=()
stop_pid() { # pid: SIGTERM, then SIGKILL after STOP_TIMEOUT
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "pid $pid did not stop after SIGTERM; SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local pid
	for pid in "${pids[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background under `timeout` and waits for it, so a
# signal to this script is handled at once (bash runs traps only between
# foreground commands) and the EXIT trap ends it. Returns its exit status.
run_bounded() { # secs, log, dir to run in, command...
	local secs=$1 log=$2 dir=$3 pid rc=0
	shift 3
	(cd "$dir" && exec timeout --kill-after=10 "$secs" "$@") >"$log" 2>&1 &
	pid=$!
	pids+=("$pid")
	wait "$pid" || rc=$?
	return "$rc"
}

wait_for_line() { # file, extended regex, seconds, pid -> prints the first match
	local file=$1 re=$2 secs=$3 pid=$4 i line
	for ((i = 0; i < secs * 10; i++)); do
		line=$(grep -m1 -oE "$re" "$file" 2>/dev/null || true)
		if [ -n "$line" ]; then
			printf '%s\n' "$line"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	say "error: no '$re' from pid $pid within ${secs}s; its log ($file):"
	tail -n 20 "$file" >&2 || true
	return 1
}

# ---------------------------------------------------------------- wstest

find_python2() {
	if [ -n "${PYTHON2:-}" ]; then
		echo "$PYTHON2"
		return
	fi
	local p
	for p in "${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python2.7" "$(command -v python2.7 || true)"; do
		if [ -n "$p" ] && [ -x "$p" ] && PYENV_VERSION=2.7.18 "$p" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	say "error: no Python 2.7 (install pyenv's 2.7.18, or set PYTHON2=/path/to/python2.7)" >&2
	return 1
}

# The virtualenv is re-made when a requirements file changes.
ensure_venv() {
	local stamp want py
	want=$(cat "$here/requirements-virtualenv.txt" "$here/requirements.txt" | sha256sum | cut -d' ' -f1)
	stamp=$venv/.lws-rs-requirements
	if [ -x "$venv/bin/wstest" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	py=$(find_python2)
	say "making the wstest virtualenv in $venv (Python 2.7: $py)"
	rm -rf "$venv"
	mkdir -p "$venv"
	local log=$venv/install.log
	{
		# virtualenv < 20.22 (the last for Python 2.7) in a folder of its own,
		# so the Python 2.7 installation is not changed.
		PYENV_VERSION=2.7.18 "$py" -m pip install --no-deps --target "$venv/bootstrap" \
			-r "$here/requirements-virtualenv.txt" &&
			PYENV_VERSION=2.7.18 PYTHONPATH="$venv/bootstrap" "$py" -m virtualenv "$venv" &&
			"$venv/bin/pip" install --no-deps -r "$here/requirements.txt" &&
			"$venv/bin/pip" check &&
			"$venv/bin/wstest" --autobahnversion
	} >"$log" 2>&1 || {
		tail -n 40 "$log"
		say "error: installing wstest failed (full log: $log)"
		return 1
	}
	tail -n 2 "$log"
	echo "$want" >"$stamp"
}

# The committed spec with this run's cases, deflate choice, URL and outdir.
make_spec() { # template, out, outdir, url
	python3 - "$@" "$cases" "$DEFLATE" <<'EOF'
import json, sys
template, out, outdir, url, cases, deflate = sys.argv[1:]
with open(template) as f:
    spec = json.load(f)
spec["outdir"] = outdir
if "servers" in spec:
    spec["servers"][0]["url"] = url
else:
    spec["url"] = url
spec["cases"] = [c.strip() for c in cases.split(",") if c.strip()]
if deflate == "1":
    spec["exclude-cases"] = [c for c in spec.get("exclude-cases", []) if c not in ("12.*", "13.*")]
with open(out, "w") as f:
    json.dump(spec, f, indent=1)
EOF
}

compare() { # side, seconds
	python3 "$here/compare.py" "$1" "$reports/$1/spec.json" "$reports/$1/index.json" \
		"$here/expected-results.json" "$2" $write_expected | tee "$reports/$1/summary.txt"
}

# ---------------------------------------------------------------- sides

run_server_side() {
	local dir=$reports/server url pid start rc=0
	rm -rf "$dir"
	mkdir -p "$dir"
	"$bin/autobahn_server" --host 127.0.0.1 --port 0 >"$dir/autobahn_server.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	url=$(wait_for_line "$dir/autobahn_server.log" 'ws://127\.0\.0\.1:[0-9]+' "$START_TIMEOUT" "$pid") || return 1
	say "server side: wstest -m fuzzingclient -> autobahn_server at $url"
	make_spec "$here/fuzzingclient.json" "$dir/spec.json" "$dir" "$url"
	start=$SECONDS
	run_bounded "$RUN_TIMEOUT" "$dir/wstest.log" "$dir" \
		"$venv/bin/python" -u "$here/wstest_loopback.py" -m fuzzingclient -s spec.json || rc=$?
	local secs=$((SECONDS - start))
	if [ "$rc" != 0 ]; then
		tail -n 20 "$dir/wstest.log"
		say "error: wstest fuzzingclient exited $rc after ${secs}s (log: $dir/wstest.log)"
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		say "error: autobahn_server died during the run; its log:"
		tail -n 20 "$dir/autobahn_server.log"
		rc=1
	fi
	stop_pid "$pid"
	compare server "$secs" || rc=1
	return "$rc"
}

run_client_side() {
	local dir=$reports/client pid port start rc=0
	rm -rf "$dir"
	mkdir -p "$dir"
	make_spec "$here/fuzzingserver.json" "$dir/spec.json" "$dir" "ws://127.0.0.1:0"
	(cd "$dir" && exec "$venv/bin/python" -u "$here/wstest_loopback.py" -m fuzzingserver -s spec.json --webport=0) >"$dir/wstest.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	port=$(wait_for_line "$dir/wstest.log" 'listening on 127\.0\.0\.1:[0-9]+' "$START_TIMEOUT" "$pid") || return 1
	port=${port##*:}
	say "client side: autobahn_client -> wstest -m fuzzingserver at ws://127.0.0.1:$port"
	start=$SECONDS
	run_bounded "$RUN_TIMEOUT" "$dir/autobahn_client.log" "$dir" \
		"$bin/autobahn_client" "ws://127.0.0.1:$port" --agent "$agent" || rc=$?
	local secs=$((SECONDS - start))
	if [ "$rc" != 0 ]; then
		tail -n 20 "$dir/autobahn_client.log"
		say "error: autobahn_client exited $rc after ${secs}s (log: $dir/autobahn_client.log)"
	fi
	stop_pid "$pid"
	compare client "$secs" || rc=1
	return "$rc"
}

# ---------------------------------------------------------------- main

# All in one function, so bash has read the whole script before it runs
# (an edit to the file during a run cannot change what runs).
main() {
	ensure_venv
	say "building the examples (release)"
	(cd "$root" && cargo build --release --example autobahn_server --example autobahn_client)
	target=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
	bin=$target/release/examples
	mkdir -p "$reports"
	say "cases: $cases; permessage-deflate cases (12.*, 13.*): $([ "$DEFLATE" = 1 ] && echo on || echo off)"

	failed=()
	summaries=()
	for s in server client; do
		[ "$side" = both ] || [ "$side" = "$s" ] || continue
		if ! "run_${s}_side"; then
			failed+=("$s")
		fi
		summaries+=("$(tail -n 1 "$reports/$s/summary.txt" 2>/dev/null || echo "autobahn $s: FAILED: no summary")")
	done
	printf '\n'
	printf '%s\n' "${summaries[@]}"
	say "reports: $reports/{server,client}/index.html"
	if [ "${#failed[@]}" != 0 ]; then
		say "FAILED: ${failed[*]}"
		exit 1
	fi
	say "all sides as expected"
}
main
exit
