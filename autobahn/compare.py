#!/usr/bin/env python3
"""Checks one side's Autobahn results against autobahn/expected-results.json.

Usage: compare.py SIDE SPEC INDEX EXPECTED SECONDS [--write-expected]

SIDE      "server" (wstest fuzzingclient against our server) or "client"
          (our client against wstest fuzzingserver)
SPEC      the spec wstest ran (its "cases" / "exclude-cases" say which cases
          had to run)
INDEX     the index.json wstest wrote
EXPECTED  expected-results.json: {"server": {case: outcome}, "client": ...,
          "timing_dependent": [cases that are OK or NON-STRICT by timing]}
SECONDS   how long the side took (for the summary line)

Fails (exit 1) on any FAILED case, on any case whose outcome is worse than
expected (a case without an expectation is expected to be OK), and on any
selected case that has no result. Better-than-expected outcomes are listed
so that the expectations can be tightened. With --write-expected the
outcomes of this run replace SIDE's expectations for the cases that ran.
"""

import json
import re
import sys

OUTCOMES = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
# How bad each outcome is. NON-STRICT and INFORMATIONAL are never compared
# in practice (a case is informational or it is not), so they rank alike.
RANK = {"OK": 0, "NON-STRICT": 1, "INFORMATIONAL": 1, "UNIMPLEMENTED": 2, "FAILED": 3}


def case_key(case_id):
    return [int(part) for part in case_id.split(".")]


def patterns(specs):
    # wstest's own matching (caseset.py): '.' literal, '*' any run.
    return [re.compile("^" + p.replace(".", r"\.").replace("*", ".*") + "$") for p in specs]


def selected(case_id, spec):
    def hit(pats):
        return any(p.match(case_id) for p in pats)

    return hit(patterns(spec.get("cases", []))) and not hit(patterns(spec.get("exclude-cases", [])))


def main(argv):
    write = "--write-expected" in argv
    args = [a for a in argv if a != "--write-expected"]
    if len(args) != 5:
        sys.stderr.write(__doc__)
        return 2
    side, spec_path, index_path, expected_path, seconds = args
    with open(spec_path) as f:
        spec = json.load(f)
    try:
        with open(index_path) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("autobahn %s: FAILED: no results (%s: %s)" % (side, index_path, e))
        return 1
    with open(expected_path) as f:
        expected_all = json.load(f)
    expected = expected_all.get(side, {})
    # OK or NON-STRICT by timing: OK there is no news.
    timing = set(expected_all.get("timing_dependent", []))

    if len(index) != 1:
        print("autobahn %s: FAILED: expected results of one agent in %s, found %s"
              % (side, index_path, sorted(index)))
        return 1
    (agent, results), = index.items()

    counts = dict((o, 0) for o in OUTCOMES)
    worse, better, changed, other, closes = [], [], [], [], {}
    for case_id in sorted(results, key=case_key):
        got = results[case_id]["behavior"]
        want = expected.get(case_id, "OK")
        if got in counts:
            counts[got] += 1
        else:
            other.append("%s: %s" % (case_id, got))
        close = results[case_id].get("behaviorClose", "OK")
        if close not in ("OK", "INFORMATIONAL"):
            closes.setdefault(close, []).append(case_id)
        if got not in RANK or RANK[got] > RANK.get(want, 0) or got == "FAILED":
            worse.append("%s: %s (expected %s)" % (case_id, got, want))
        elif RANK[got] < RANK.get(want, 0):
            if case_id in timing and got == "OK" and want == "NON-STRICT":
                continue
            better.append("%s: %s (expected %s)" % (case_id, got, want))
        elif got != want:
            changed.append("%s: %s (expected %s)" % (case_id, got, want))

    # Cases with an expectation that the spec selected must have a result.
    missing = sorted((c for c in expected if selected(c, spec) and c not in results), key=case_key)

    ok = not worse and not missing and not other
    summary = "autobahn %s: %d cases: %s; %s s%s" % (
        side,
        len(results),
        ", ".join("%s %d" % (o, counts[o]) for o in OUTCOMES),
        seconds,
        "" if ok else " -- FAILED",
    )
    for title, items in (
        ("worse than expected (or FAILED)", worse),
        ("not a known outcome", other),
        ("selected but no result", missing),
    ):
        if items:
            print("autobahn %s: %s: %d" % (side, title, len(items)))
            for item in items:
                print("    " + item)
    # Not failures: some cases are NON-STRICT or OK depending on timing
    # (README); a case that is always better may get a tighter expectation.
    for title, items in (
        ("better than expected", better),
        ("different from expected, not worse", changed),
    ):
        if items:
            print("autobahn %s: note: %s: %s" % (side, title, ", ".join(items)))
    for close, cases in sorted(closes.items()):
        print("autobahn %s: note: closing behaviour %s (not an outcome) in %d case(s): %s"
              % (side, close, len(cases), " ".join(cases)))
    print(summary)

    if write:
        new = dict(expected)
        for case_id, r in results.items():
            got, old = r["behavior"], expected.get(case_id, "OK")
            # a timing-dependent case keeps its worse outcome
            keep_old = case_id in timing and RANK.get(old, 0) > RANK.get(got, 0)
            new[case_id] = old if keep_old else got
        expected_all[side] = dict(sorted(new.items(), key=lambda kv: case_key(kv[0])))
        with open(expected_path, "w") as f:
            json.dump(expected_all, f, indent=1)
            f.write("\n")
        print("autobahn %s: wrote %d expectations to %s" % (side, len(new), expected_path))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
