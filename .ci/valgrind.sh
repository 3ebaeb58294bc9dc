#!/usr/bin/env bash
# Runs every test target of the workspace under valgrind memcheck, two at a
# time (valgrind runs a program's threads one at a time, so two use both
# cores): each integration test file of every package, and each package's
# unit tests. Fails on any invalid access (exit 99), any definite leak not
# covered by .ci/valgrind.supp, or any failing test. Doctests and the
# one target in SKIP are left to the plain test step. The soak test scales
# itself down under valgrind (tests/soak.rs says how).
#
# usage: .ci/valgrind.sh [LOG_DIR]   (from the workspace root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log_dir=${1:-target/ci-logs}/valgrind
rm -rf "$log_dir"
mkdir -p "$log_dir"

# Targets not run under valgrind, with why.
#   lws-sys bindings_current: runs bindgen's libclang over lws's headers to
#   compare with the committed bindings; none of our code runs, and under
#   valgrind it took 628 s of the step. The plain test step runs it.
SKIP=" lws-sys:bindings_current "

# Build everything once; list each test executable with its package dir.
list=$log_dir/targets
cargo test --workspace --no-run --message-format=json 2>"$log_dir/build.log" |
	python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        t = m["target"]
        label = t["name"] if "test" in t["kind"] else "lib"
        print(m["executable"], os.path.dirname(m["manifest_path"]), label)
' | sort -u >"$list.raw" || { cat "$log_dir/build.log"; exit 1; }
# Label each as package:target, the package named by its manifest dir.
: >"$list"
while read -r exe dir target; do
	pkg=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1)
	case $SKIP in *" $pkg:$target "*) echo "skipped: $pkg:$target" ;; *) echo "$exe $dir $pkg:$target" >>"$list" ;; esac
done <"$list.raw"
echo "valgrind: $(wc -l <"$list") test targets, two at a time"

supp=$PWD/.ci/valgrind.supp
run_one() { # exe dir label
	local exe=$1 dir=$2 label=$3 log start rc
	log=$log_dir/${label//:/-}.log
	start=$SECONDS
	set +e
	(cd "$dir" && valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
		--show-leak-kinds=definite --suppressions="$supp" -q "$exe" --test-threads=2) >"$log" 2>&1
	rc=$?
	set -e
	if [ "$rc" = 0 ]; then
		echo "ok      $label ($((SECONDS - start)) s)"
	else
		echo "FAILED  $label ($((SECONDS - start)) s, exit $rc; log $log)"
	fi
}
export -f run_one
export log_dir supp
start=$SECONDS
xargs -P2 -L1 bash -c 'run_one "$@"' _ <"$list" | tee "$log_dir/summary"
echo "valgrind: $((SECONDS - start)) s"
if grep -q '^FAILED' "$log_dir/summary"; then
	for f in $(sed -n 's/^FAILED.*log \(.*\))$/\1/p' "$log_dir/summary"); do
		echo "==== $f"
		grep -v '^$' "$f" | tail -80
	done
	exit 1
fi
