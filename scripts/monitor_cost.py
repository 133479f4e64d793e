#!/usr/bin/env python3
"""What does a /connz of 10,000 connections cost? natsring against nats-server.

    scripts/monitor_cost.py [--conns N] [--fetches K] [--rounds R] [--out DIR]
                            [--target-dir DIR] [--nats-server PATH] [--nats-server-old PATH]
                            [--only natsring,nats-2.15.1,...]

The requirement (monitoring issue): "a /connz of 10,000 connections answers in under 100 ms
without pausing any shard for more than 1 ms".

What runs
---------
Each server, started fresh per round on free loopback ports with HTTP monitoring on, pinned
to CPU 0 with all its threads (`taskset -c 0`: natsring's monitoring threads share the core
with its shard, as nats-server's goroutines share theirs), this script and its probe pinned to
CPU 1:

  natsring     target/release/natsring --shards 1 -a 127.0.0.1 -p PORT -m HTTP_PORT
  nats-2.15.1  nats-server -a 127.0.0.1 -p PORT -m HTTP_PORT
  nats-2.9.10  /usr/sbin/nats-server -a 127.0.0.1 -p PORT -m HTTP_PORT   (if present)

This script opens N connections (default 10,000; it raises its open-file limit, which the
server inherits), each CONNECT with a name, one SUB and a PING answered, and keeps them open.
Then, K times (default 20), it fetches `/connz?limit=N` (every connection in one answer) and
`/connz` (nats-server's default page of 1,024), timing each from request to the last byte.
Meanwhile a probe connection does PING/PONG round trips back to back, in a process of its
own: the longest round trip while fetches ran, against the longest in the second before them,
says how long the server stopped serving its clients to answer (on a 2-core machine, with this
script parsing 10,000-connection answers, the scheduler's share shows in it too).

natsring also reports it directly: each shard measures the CPU time of every visit to its
control mailbox (the pause is that long, preemption aside; on a VM, time the host stole from
the vCPU counts too) and /metrics has the longest since start
(`natsring_shard_mailbox_answer_max_seconds`), the visits and those over 1 ms
(`natsring_shard_mailbox_answers_total`, `..._over_1ms_total`): the table shows how many
answers the fetches took and how many of them went over 1 ms.

Output: a table of medians over the rounds (to stdout and --out/table.md) and results.json.
"""

import argparse
import json
import multiprocessing
import os
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (server start and stop, finding the nats-servers)

REPO = bench.REPO
log = bench.log
LABELS = {"natsring": "natsring", "nats-2.15.1": "nats-server 2.15.1",
          "nats-2.9.10": "nats-server 2.9.10"}


def parse_args():
    parser = argparse.ArgumentParser(description="the cost of /connz with many connections "
                                                 "(see the module docstring)")
    parser.add_argument("--conns", type=int, default=10000, help="connections (default 10000)")
    parser.add_argument("--fetches", type=int, default=20,
                        help="fetches of each /connz form per round (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--out", default=os.path.join(REPO, "bench-results", "monitor-cost"),
                        help="output directory (default bench-results/monitor-cost/)")
    parser.add_argument("--only", help="comma-separated servers to run")
    bench.add_binary_arguments(parser)
    return parser.parse_args()


def raise_fd_limit(wanted):
    """This process holds every client socket, the server (a child) one per connection: each
    needs `wanted` open files. Raises the soft limit (and the hard one, where allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        if hard < wanted:
            sys.exit(f"monitor_cost.py: {wanted} open files needed, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def open_connections(port, count):
    """`count` connections, each CONNECTed with one subscription, all answered."""
    conns = []
    for index in range(count):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(b'CONNECT {"verbose":false,"name":"idle-%d","lang":"python",'
                     b'"version":"1"}\r\nSUB idle.%d 1\r\nPING\r\n' % (index, index))
        conns.append(conn)
    for conn in conns:
        received = b""
        while b"PONG\r\n" not in received:
            chunk = conn.recv(4096)
            if not chunk:
                raise RuntimeError("a connection was closed while opening")
            received += chunk
    return conns


def probe_run(port, stop, results):
    """The probe, in a process of its own (a fetch's JSON parsing in this one would hold the
    interpreter's lock and count as the server's pause): PING/PONG round trips back to back
    on one connection until `stop` is set, then each round trip's (end, duration) sent back.
    time.monotonic is the system-wide monotonic clock on Linux, comparable across processes."""
    # The probe shares this script's CPU: it goes first (root may raise a priority).
    try:
        os.nice(-10)
    except OSError:
        pass
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read_pong():
        received = b""
        while b"PONG\r\n" not in received:
            chunk = conn.recv(4096)
            if not chunk:
                raise RuntimeError("the probe was closed")
            received += chunk

    conn.sendall(b'CONNECT {"verbose":false,"name":"probe"}\r\nPING\r\n')
    read_pong()
    samples = []
    while not stop.is_set():
        started = time.monotonic()
        conn.sendall(b"PING\r\n")
        read_pong()
        ended = time.monotonic()
        samples.append((ended, ended - started))
    conn.close()
    results.send(samples)


class Probe:
    """The probe's process, and the round trips it measured."""

    def __init__(self, port):
        self.stop = multiprocessing.Event()
        self.results, child_end = multiprocessing.Pipe(duplex=False)
        self.process = multiprocessing.Process(target=probe_run,
                                               args=(port, self.stop, child_end), daemon=True)
        self.process.start()
        self.samples = None

    def finish(self):
        self.stop.set()
        self.samples = self.results.recv() if self.results.poll(30) else []
        self.process.join(5)

    def longest(self, since, until):
        durations = [d for end, d in self.samples if since <= end <= until]
        return max(durations) if durations else None

    def p99(self, since, until):
        durations = sorted(d for end, d in self.samples if since <= end <= until)
        return durations[int(len(durations) * 0.99)] if durations else None


def fetch(url):
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return time.monotonic() - started, body


def mailbox_figures(http_port):
    """natsring's mailbox figures over its shards: the longest answer since start (seconds),
    the answers, the answers over 1 ms; None when the series are absent."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=30) as r:
        text = r.read().decode()

    def values(name):
        return [float(m.group(1)) for m in re.finditer(
            rf"^natsring_shard_{name}\{{[^}}]*\}} (\S+)$", text, re.M)]

    longest = values("mailbox_answer_max_seconds")
    if not longest:
        return None
    return (max(longest), sum(values("mailbox_answers_total")),
            sum(values("mailbox_answers_over_1ms_total")))


def measure(ctx, key, command):
    port, http_port = bench.free_port(), bench.free_port()
    argv = [part.replace("{port}", str(port)).replace("{http_port}", str(http_port))
            for part in command]
    record = {"server": key, "command": " ".join(argv), "error": None}
    os.makedirs(os.path.join(ctx.out, "logs"), exist_ok=True)
    with open(os.path.join(ctx.out, "logs", f"{key}.log"), "ab") as server_log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=server_log,
                                   stderr=subprocess.STDOUT)
        conns = []
        probe = None
        try:
            bench.wait_for_port(port, process)
            bench.wait_for_port(http_port, process)
            conns = open_connections(port, ctx.conns)
            probe = Probe(port)
            time.sleep(1.5)

            quiet_until = time.monotonic()
            all_times, page_times = [], []
            before = mailbox_figures(http_port) if key == "natsring" else None
            fetches_started = time.monotonic()
            for index in range(ctx.fetches):
                seconds, body = fetch(f"http://127.0.0.1:{http_port}/connz?limit={ctx.conns}")
                if index == 0:
                    # Checked once: parsing 10,000 connections here would take the CPU the
                    # probe measures on.
                    listed = json.loads(body)["num_connections"]
                    if listed < ctx.conns:
                        raise RuntimeError(f"/connz listed {listed} of {ctx.conns} "
                                           f"connections")
                all_times.append(seconds)
                seconds, _ = fetch(f"http://127.0.0.1:{http_port}/connz")
                page_times.append(seconds)
            fetches_ended = time.monotonic()
            probe.finish()
            record["probe_max_idle_ms"] = 1000 * (probe.longest(quiet_until - 1.0, quiet_until)
                                                 or 0)
            record["probe_p99_idle_ms"] = 1000 * (probe.p99(quiet_until - 1.0, quiet_until) or 0)
            record["connz_all_ms_median"] = 1000 * bench.median(all_times)
            record["connz_all_ms_max"] = 1000 * max(all_times)
            record["connz_page_ms_median"] = 1000 * bench.median(page_times)
            record["connz_all_bytes"] = len(body)
            record["probe_max_during_ms"] = 1000 * (probe.longest(fetches_started,
                                                                  fetches_ended) or 0)
            record["probe_p99_during_ms"] = 1000 * (probe.p99(fetches_started, fetches_ended)
                                                    or 0)
            after = mailbox_figures(http_port) if key == "natsring" else None
            if before and after:
                record["shard_pause_max_ms"] = 1000 * after[0]
                record["mailbox_answers"] = after[1] - before[1]
                record["mailbox_answers_over_1ms"] = after[2] - before[2]
        except (RuntimeError, OSError, ValueError) as err:
            record["error"] = str(err)
        finally:
            if probe and probe.samples is None:
                probe.stop.set()
                probe.process.join(5)
            for conn in conns:
                conn.close()
            bench.stop_server(process)
    return record


FIGURES = [("connz_all_ms_median", "/connz?limit=N, median ms"),
           ("connz_all_ms_max", "/connz?limit=N, max ms"),
           ("connz_page_ms_median", "/connz (1,024), median ms"),
           ("probe_p99_idle_ms", "probe's round trip p99 before, ms"),
           ("probe_p99_during_ms", "probe's round trip p99 during fetches, ms"),
           ("probe_max_idle_ms", "probe's longest round trip before, ms"),
           ("probe_max_during_ms", "probe's longest round trip during fetches, ms"),
           ("shard_pause_max_ms", "longest shard pause answering since start (natsring's own), ms"),
           ("mailbox_answers", "shard mailbox answers during the fetches (natsring's own)"),
           ("mailbox_answers_over_1ms", "of which over 1 ms of shard CPU (natsring's own)")]


def main():
    args = parse_args()
    ctx = argparse.Namespace(conns=args.conns, fetches=args.fetches,
                             out=os.path.abspath(args.out))
    raise_fd_limit(args.conns + 1000)
    natsring = os.path.join(args.target_dir, "release", "natsring")
    if not os.access(natsring, os.X_OK):
        sys.exit(f"monitor_cost.py: {natsring} missing: build with cargo build --release")
    venv_server = os.path.join(args.target_dir, "python-venv", "bin", "nats-server")
    pin = ["taskset", "-c", bench.SERVER_CPUS]
    os.sched_setaffinity(0, {int(bench.GENERATOR_CPUS)})
    commands = {"natsring": pin + [natsring, "--shards", "1", "-a", "127.0.0.1", "-p", "{port}",
                                   "-m", "{http_port}"]}
    binaries = {
        "nats-2.15.1": bench.find_nats_server(
            "2.15.1", args.nats_server or (venv_server if os.access(venv_server, os.X_OK)
                                           else None)),
        "nats-2.9.10": bench.find_nats_server("2.9.10", args.nats_server_old),
    }
    for key, binary in binaries.items():
        if binary:
            commands[key] = pin + [binary, "-a", "127.0.0.1", "-p", "{port}", "-m",
                                   "{http_port}"]
    if args.only:
        wanted = set(args.only.split(","))
        commands = {k: v for k, v in commands.items() if k in wanted}
    os.makedirs(ctx.out, exist_ok=True)
    runs = []
    for round_index in range(1, args.rounds + 1):
        for key, command in commands.items():
            record = measure(ctx, key, command)
            record["round"] = round_index
            runs.append(record)
            shown = ", ".join(f"{name} {record[name]:.1f}" for name, _ in FIGURES
                              if record.get(name) is not None)
            log(f"r{round_index} {key:<12} {record['error'] or shown}")
    lines = [f"{args.conns} connections, {args.fetches} fetches of each form per round, "
             f"medians over {args.rounds} rounds", "",
             "| figure | " + " | ".join(LABELS.get(k, k) for k in commands) + " |",
             "|---|" + "---:|" * len(commands)]
    for name, label in FIGURES:
        cells = []
        for key in commands:
            values = [r[name] for r in runs if r["server"] == key and r.get(name) is not None]
            cells.append(f"{bench.median(values):.1f}" if values else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(ctx.out, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(ctx.out, "results.json"), "w") as f:
        json.dump(runs, f, indent=2)


if __name__ == "__main__":
    main()
