#!/usr/bin/env bash
# A/B of natsring builds as a two-node cluster, in the setup of scripts/bench.py's cluster-*
# rows: node A pinned to CPU 0, node B (routed to A) to CPU 1, natsring-bench unpinned with its
# publisher on A and its subscriber on B, so every message crosses the route. Builds alternate
# for ROUNDS rounds, each on fresh nodes; prints each run and the medians (delivered msgs/s,
# both nodes' CPU ns per message). For checking one change to the route path; the side by side
# with nats-server pairs is scripts/bench.py --only '^cluster-'.
#
# Usage: scripts/cluster-ab.sh ROUNDS SIZE BINARY[:EXTRA_CONFIG_LINE] ...
#   scripts/cluster-ab.sh 7 1024 /tmp/natsring-before target/release/natsring
#   scripts/cluster-ab.sh 5 1024 target/release/natsring "target/release/natsring:max_pending: 4MB"
# MSGS: messages per run (default 3000000). BENCH: natsring-bench (default
# target/release/natsring-bench, or $CARGO_TARGET_DIR/release/natsring-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,13p "$0"; exit 2; }
rounds=$1
size=$2
shift 2
bench=${BENCH:-${CARGO_TARGET_DIR:-target}/release/natsring-bench}
msgs=${MSGS:-3000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The port files nats-server and natsring write, with -1 ports, would do as well; fixed free
# ports keep the configuration files readable in the logs.
run() {
    local binary=$1 extra=$2 a_port b_port a_cluster b_cluster pa pb out
    a_port=$(free_port) b_port=$(free_port) a_cluster=$(free_port) b_cluster=$(free_port)
    printf '%s\nserver_name: A\ncluster {\n  name: ab\n  host: 127.0.0.1\n  port: %s\n}\n' \
        "$extra" "$a_cluster" > "$work/A.conf"
    printf '%s\nserver_name: B\ncluster {\n  name: ab\n  host: 127.0.0.1\n  port: %s\n  routes: [nats-route://127.0.0.1:%s]\n}\n' \
        "$extra" "$b_cluster" "$a_cluster" > "$work/B.conf"
    taskset -c 0 "$binary" --shards 1 -a 127.0.0.1 -p "$a_port" -c "$work/A.conf" \
        > "$work/A.log" 2>&1 &
    pa=$!
    taskset -c 1 "$binary" --shards 1 -a 127.0.0.1 -p "$b_port" -c "$work/B.conf" \
        > "$work/B.log" 2>&1 &
    pb=$!
    sleep 1.2
    out=$("$bench" pubsub --server "127.0.0.1:$a_port" --sub-server "127.0.0.1:$b_port" \
        --server-pid "$pa,$pb" --size "$size" --msgs "$msgs" \
        --max-in-flight-bytes 16777216 2>&1) || true
    kill "$pa" "$pb" 2>/dev/null || true
    wait "$pa" "$pb" 2>/dev/null || true
    local rate cpu
    rate=$(echo "$out" | awk '/^delivered/ {print $4, $5}')
    cpu=$(echo "$out" | awk '/server CPU/ {print $5}')
    echo "$rate|$cpu"
}

results=$work/results
: > "$results"
for round in $(seq "$rounds"); do
    for variant in "$@"; do
        binary=${variant%%:*}
        extra=""
        [ "$variant" != "$binary" ] && extra=${variant#*:}
        line=$(run "$binary" "$extra")
        echo "round $round  $variant: ${line%%|*}, ${line##*|} ns/msg"
        echo "$variant|$line" >> "$results"
    done
done
python3 - "$results" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(lambda: ([], []))
for line in open(sys.argv[1]):
    variant, rate, cpu = line.rstrip("\n").rsplit("|", 2)
    if not rate.strip() or not cpu.strip():
        continue
    value, unit = rate.split()
    scale = {"M": 1e6, "k": 1e3}.get(unit[0], 1)
    runs[variant][0].append(float(value) * scale)
    runs[variant][1].append(float(cpu.replace(",", "")))
for variant, (rates, cpus) in runs.items():
    print(f"median  {variant}: {statistics.median(rates) / 1e6:.3f} M msgs/s, "
          f"{statistics.median(cpus):.0f} ns/msg ({len(rates)} runs)")
EOF
