#!/usr/bin/env bash
# A/B of two natsring builds on one scenario: fresh server per run, server pinned to CPU 0 and
# the generator to CPU 1, A and B alternating for ROUNDS rounds; prints each run and the
# medians (delivered or published msgs/s, server CPU ns per message). For checking one change;
# the side-by-side with nats-server is scripts/bench.sh.
#
# Usage: scripts/ab.sh ROUNDS "natsring-bench args" BINARY_A BINARY_B [server args...]
# (target/release/natsring below: or wherever cargo puts it, e.g. $CARGO_TARGET_DIR/release/)
#   scripts/ab.sh 3 "pub --size 16 --msgs 16000000" /tmp/natsring-before target/release/natsring
#   scripts/ab.sh 3 "pubsub --size 16 --subs 64 --msgs 1000000" /tmp/natsring-before target/release/natsring
# With the real Rust client as the generator (its own CPU per message is printed too):
#   AB_GENERATOR=target/release/examples/natsring-asyncbench scripts/ab.sh 3 \
#     "pub --size 1024 --msgs 3000000" /tmp/natsring-before target/release/natsring
# Cross-shard (both shards on CPUs 0,1 and the generator unpinned, as bench.sh does):
#   AB_SERVER_CPUS=0,1 AB_GEN_CPUS= scripts/ab.sh 3 \
#     "pubsub --size 16 --msgs 4000000 --shards 2 --pub-shard 0 --sub-shard 1" A B --shards 2
set -euo pipefail
rounds=$1; bench_args=$2; a=$3; b=$4; shift 4
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib.sh"
# AB_GENERATOR: another generator with natsring-bench's command line and JSON report, e.g.
# the real clients' target/release/natsring-gobench or target/release/examples/
# natsring-asyncbench (scripts/bench.sh builds both).
if [ -n "${AB_GENERATOR:-}" ]; then
  bench=$AB_GENERATOR
else
  (cd "$root" && cargo build --release --bin natsring-bench)
  bench="$(target_dir)/release/natsring-bench"
fi
server_cpus=${AB_SERVER_CPUS-0}
gen_cpus=${AB_GEN_CPUS-1}
# Runs a command on the given CPUs (none: unpinned). Always exec: run in the background, the
# PID the caller gets is the command's own, which --server-pid needs.
pin() { if [ -n "$1" ]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq "$rounds"); do
  for which in A B; do
    binary=$a; [ "$which" = B ] && binary=$b
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (pin "$server_cpus" "$binary" -a 127.0.0.1 -p "$port" "$@" >/dev/null 2>&1) &
    pid=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    # shellcheck disable=SC2086
    json=$(pin "$gen_cpus" "$bench" $bench_args --server "127.0.0.1:$port" --server-pid "$pid" --json)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$which $round $json" >> "$results"
  done
done
python3 - "$results" <<'PY'
import json, statistics, sys
runs = {"A": [], "B": []}
for line in open(sys.argv[1]):
    which, round_, text = line.split(" ", 2)
    report = json.loads(text)
    rate = report["delivery_rate_msgs"] or report["publish_rate_msgs"]
    client = report.get("client_cpu_ns_per_msg")
    runs[which].append((rate, report["server_cpu_ns_per_msg"], client))
    client_text = f", client {client:.1f} ns/msg" if client is not None else ""
    print(f"{which} round {round_}: {rate / 1e6:.2f} M msg/s, "
          f"{report['server_cpu_ns_per_msg']:.1f} ns/msg{client_text}")
for which, values in runs.items():
    rate = statistics.median(v[0] for v in values)
    cpu = statistics.median(v[1] for v in values)
    clients = [v[2] for v in values if v[2] is not None]
    client_text = f", client {statistics.median(clients):.1f} ns/msg" if clients else ""
    print(f"{which} median: {rate / 1e6:.2f} M msg/s, {cpu:.1f} ns/msg{client_text}")
PY
