#!/usr/bin/env bash
# Builds a fuzz target with coverage instrumentation on stable Rust and runs
# it over its committed corpus for SECONDS (libFuzzer's -max_total_time).
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer args...]
#   fuzz/run.sh --build            (build both targets only)
#   fuzz/run.sh --clippy           (clippy -D warnings, same flags: the
#                                   instrumented lws build is reused)
#
# TARGET is server_bytes or client_bytes. New inputs go to
# $FUZZ_WORK/corpus/TARGET (default target dir's fuzz-work/), seeded from
# fuzz/corpus/TARGET, which is only read; crashes and hangs to
# $FUZZ_WORK/artifacts/TARGET. Exits non-zero when libFuzzer found a crash,
# a panic (our harness panics on a hang) or a timeout. Prints the run's last
# stats line (execs, cov, ft) and a summary line "fuzz: TARGET ..." (also
# written to $FUZZ_WORK/TARGET.summary).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
# Relative dirs are the caller's, made absolute before the cd.
export CARGO_TARGET_DIR=$(abs "${CARGO_TARGET_DIR:-$here/target}")
work=$(abs "${FUZZ_WORK:-$CARGO_TARGET_DIR/fuzz-work}")
cd "$here"
triple=$(rustc -vV | sed -n 's/^host: //p')

# Rust: LLVM's SanitizerCoverage (what cargo-fuzz passes; -Zsanitizer needs
# nightly, so no ASan). --target keeps the flags off build scripts.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# lws's C: gcc's trace-pc (src/c_coverage.rs turns it into libFuzzer extra
# counters) and trace-cmp; x86_64 only (the hook reads the return address).
if [ "${triple%%-*}" = x86_64 ]; then
	export CFLAGS="-fsanitize-coverage=trace-pc,trace-cmp"
	RUSTFLAGS="$RUSTFLAGS --cfg lws_c_coverage"
fi

# FUZZ_ASAN=1: lws's C is also built with gcc's AddressSanitizer (Rust
# code is not instrumented: that needs nightly), so an invalid access in
# lws aborts the input as a crash. rustc links with lld and no default
# libs, so gcc's libasan is named on the link line and preloaded at run
# time (its malloc must come before libc's). LeakSanitizer stays off:
# each process keeps its context to the end. Own target dir advised: the
# instrumented lws differs.
if [ -n "${FUZZ_ASAN:-}" ]; then
	asan_so=$(gcc -print-file-name=libasan.so)
	[ -e "$asan_so" ] || { echo "FUZZ_ASAN: gcc has no libasan.so" >&2; exit 2; }
	export CFLAGS="${CFLAGS:-} -fsanitize=address -fno-omit-frame-pointer"
	RUSTFLAGS="$RUSTFLAGS -Clink-arg=-Wl,--no-as-needed -Clink-arg=$asan_so"
	export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
	preload=$asan_so
fi

build() {
	cargo build --release --target "$triple" -j "${FUZZ_JOBS:-2}" --bins
}

if [ "${1:-}" = --build ]; then
	build
	exit 0
fi
if [ "${1:-}" = --clippy ]; then
	cargo clippy --release --target "$triple" -j "${FUZZ_JOBS:-2}" --all-targets -- -D warnings
	exit 0
fi
[ $# -ge 2 ] || { sed -n '2,16p' "$0"; exit 2; }
target=$1 seconds=$2
shift 2
case $target in server_bytes | client_bytes) ;; *) echo "unknown target $target" >&2; exit 2 ;; esac
build
bin=$CARGO_TARGET_DIR/$triple/release/$target
mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
log=$work/$target.log
echo "fuzz: running $target for ${seconds}s (log $log)"
set +e
# -timeout: a single input over 10 s is a hang even if our own 3 s
# deadline did not fire. -rss_limit_mb: a leak that grows fails the run.
LD_PRELOAD=${preload:-} nice -n 10 "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	-max_len=8192 -print_final_stats=1 \
	-artifact_prefix="$work/artifacts/$target/" \
	"$@" "$work/corpus/$target" "$here/corpus/$target" >"$log" 2>&1
rc=$?
set -e
grep -E '^(stat::|INFO: Loaded|INFO: .*[Ee]xtra)' "$log" || true
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
if [ "$rc" != 0 ]; then
	grep -E -A 20 'panicked|ERROR: libFuzzer|deadly signal|SUMMARY' "$log" | head -n 60 || true
	ls -1 "$work/artifacts/$target" || true
	echo "fuzz: $target FAILED (exit $rc), last stats: $last" | tee "$work/$target.summary"
	exit 1
fi
echo "fuzz: $target ok, ${seconds}s: $last" | tee "$work/$target.summary"
