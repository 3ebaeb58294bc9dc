#!/usr/bin/env python3
"""Turns the RESULT lines of bench/compare.sh into BENCHMARKS.md.

Medians over rounds, the spread across rounds, ratios to the plain-C
reference (c-lws), and the targets of issue 7 checked against the figures.
"""
import argparse
import datetime
import os
import platform
import statistics
import subprocess

BASE = "c-lws"
ORDER = ["c-lws", "lws-rs", "raw-tcp", "tokio-tungstenite", "fastwebsockets"]


def parse(path):
    rows = []
    if not path or not os.path.exists(path):
        return rows
    for line in open(path):
        if not line.startswith("RESULT "):
            continue
        fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        rows.append(fields)
    return rows


def key(r):
    mode, size = r.get("mode"), int(r.get("size", 0))
    if mode == "rtt":
        return ("rtt", size, 1, 1)
    if mode == "tp":
        conns = int(r.get("conns", r.get("connections", 1)))
        return ("tp", size, conns, int(r.get("window", 1)))
    return (mode, size, int(r.get("max", r.get("opened", 0)) or 0), 0)


def label(k):
    mode, size, conns, window = k
    s = f"{size // 1048576} MiB" if size >= 1048576 else f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
    if mode == "rtt":
        return f"round trip {s}"
    return f"throughput {s}, {conns} conn x {window} in flight"


def collect(rows, metric):
    """{key: {server: [values]}} over rows whose status is ok."""
    table = {}
    for r in rows:
        if r.get("status") != "ok" or metric not in r:
            continue
        try:
            v = float(r[metric])
        except ValueError:
            continue
        table.setdefault(key(r), {}).setdefault(r["name"], []).append(v)
    return table


def cell(values, base, lower_better):
    if not values:
        return "—"
    m = statistics.median(values)
    spread = (max(values) - min(values)) / m * 100 if m else 0
    text = f"{m:,.1f}" if m < 1000 else f"{m:,.0f}"
    if base:
        text += f" (x{m / base:.2f})"
    if len(values) > 1:
        text += f" ±{spread:.0f}%"
    return text


def table(rows, metric, lower_better, keys_filter, servers):
    data = collect(rows, metric)
    keys = sorted(k for k in data if keys_filter(k))
    out = ["| test | " + " | ".join(servers) + " |", "|---" * (len(servers) + 1) + "|"]
    for k in keys:
        base = data[k].get(BASE)
        base = statistics.median(base) if base else None
        cells = [cell(data[k].get(s, []), base, lower_better) for s in servers]
        out.append(f"| {label(k)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def median_of(rows, metric, name, k):
    v = collect(rows, metric).get(k, {}).get(name)
    return statistics.median(v) if v else None


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(open("/proc/meminfo").readline().split()[1])
        mem = f", {kb / 1048576:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} x {cpu}{mem}, Linux {platform.release()}, lws-rs {rev or '?'}"


def targets(plain, idle):
    def ratio(metric, a, b, k):
        x, y = median_of(plain, metric, a, k), median_of(plain, metric, b, k)
        return x / y if x and y else None

    checks = []

    def check(text, value, ok):
        if value is None:
            checks.append(f"| {text} | not measured | — |")
        else:
            checks.append(f"| {text} | {value} | {'met' if ok else 'NOT met'} |")

    for size in (64, 1024):
        r = ratio("p50_us", "lws-rs", BASE, ("rtt", size, 1, 1))
        check(f"round trip p50 {size} B vs C lws <= 1.05", r and f"x{r:.3f}", r is not None and r <= 1.05)
    r = ratio("msgs_per_s", "lws-rs", BASE, ("tp", 64, 100, 16))
    check("throughput 64 B, 100 conns vs C lws >= 1", r and f"x{r:.2f}", r is not None and r >= 1)
    for peer in ("tokio-tungstenite", "fastwebsockets"):
        r = ratio("p50_us", "lws-rs", peer, ("rtt", 64, 1, 1))
        check(f"round trip p50 64 B vs {peer} < 1", r and f"x{r:.3f}", r is not None and r < 1)
        r = ratio("msgs_per_s", "lws-rs", peer, ("tp", 64, 100, 16))
        check(f"throughput 64 B, 100 conns vs {peer} > 1", r and f"x{r:.2f}", r is not None and r > 1)
    r = ratio("p50_us", "lws-rs", "raw-tcp", ("rtt", 64, 1, 1))
    check("round trip p50 64 B vs raw TCP <= 1.5", r and f"x{r:.2f}", r is not None and r <= 1.5)
    per = {}
    for row in idle:
        if row.get("status") == "ok" and row.get("rss_per_conn_kb", "na") != "na":
            per[row["name"]] = float(row["rss_per_conn_kb"])
    if BASE in per and "lws-rs" in per:
        d = per["lws-rs"] - per[BASE]
        check("memory per idle conn, ours minus C lws <= 1 KiB", f"{d:+.2f} KiB", d <= 1.0)
    else:
        check("memory per idle conn, ours minus C lws <= 1 KiB", None, False)
    return "\n".join(["| target | measured | |", "|---|---|---|"] + checks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plain")
    ap.add_argument("--idle")
    ap.add_argument("--tls")
    ap.add_argument("--rounds", default="?")
    ap.add_argument("--command", default="bench/compare.sh")
    a = ap.parse_args()
    plain, idle, tls = parse(a.plain), parse(a.idle), parse(a.tls)
    servers = [s for s in ORDER if any(r.get("name") == s for r in plain)]
    bad = [r for r in plain + idle + tls if r.get("status") != "ok"]

    print("# Benchmarks\n")
    print(f"Generated by `{a.command.strip()}` on {datetime.date.today()}: {machine()}.")
    print(f"Medians of {a.rounds} interleaved rounds; (xR) = ratio to the plain-C reference")
    print("(c/echo_server.c on the same lws, one lws_write per WRITEABLE); ±S% = spread")
    print("(max - min) / median across rounds. Client (../shared/bench wsload) and server")
    print("pinned to different CPUs. Every echo is checked byte for byte.")
    print(f"Runs that failed a check: {len(bad)}.\n")
    print("## Targets\n")
    print(targets(plain, idle) + "\n")
    print("## Round trip p50, µs (lower is better)\n")
    print(table(plain, "p50_us", True, lambda k: k[0] == "rtt", servers) + "\n")
    print("## Round trip p99, µs\n")
    print(table(plain, "p99_us", True, lambda k: k[0] == "rtt", servers) + "\n")
    print("## Throughput, messages/s (higher is better)\n")
    print(table(plain, "msgs_per_s", False, lambda k: k[0] == "tp", servers) + "\n")
    print("## Idle connections\n")
    print("50,000 are wanted; compare.sh opens fewer where the hard RLIMIT_NOFILE is lower")
    print("(both client and server need one fd per connection, and raising the hard limit")
    print("needs CAP_SYS_RESOURCE). RSS per connection = (RSS after - RSS before) / opened.\n")
    print("| server | open | RSS per connection, KiB | opened per s |")
    print("|---|---|---|---|")
    for r in idle:
        print(f"| {r.get('name')} | {r.get('opened', r.get('max', '?'))} | {r.get('rss_per_conn_kb')} | "
              f"{r.get('conns_per_s')} | ")
    print("\n## TLS (wss://), measured with examples/latency and examples/throughput\n")
    tls_servers = [s for s in ORDER if any(r.get("name") == s for r in tls)]
    print(table(tls, "p50_us", True, lambda k: k[0] == "rtt", tls_servers).replace("| test |", "| p50 µs |") + "\n")
    print(table(tls, "msgs_per_s", False, lambda k: k[0] == "tp", tls_servers).replace("| test |", "| msg/s |"))


if __name__ == "__main__":
    main()
