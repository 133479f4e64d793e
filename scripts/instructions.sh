#!/usr/bin/env bash
# Server instructions per message, counted exactly by valgrind's callgrind (no noise, so one
# run compares two builds): natsring under `valgrind --tool=callgrind` with one shard, driven
# by natsring-bench twice (SMALL then LARGE messages, each on a fresh server); the result is
# (total(LARGE) - total(SMALL)) / (LARGE - SMALL), so start-up, connecting and shutdown cancel
# out. Needs valgrind (apt-get install valgrind).
#
# Usage: scripts/instructions.sh pub|pubsub BINARY [bench args...] [-- server args...]
#   scripts/instructions.sh pubsub /tmp/natsring-before
#   scripts/instructions.sh pub target/release/natsring --user limited --pass pw -- -c perm.conf
# SMALL and LARGE: environment (defaults 200000 and 600000).
set -euo pipefail
mode=$1; binary=$2; shift 2
bench_args=(); server_args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; server_args=("$@"); break; fi
  bench_args+=("$1"); shift
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib.sh"
(cd "$root" && cargo build --release --bin natsring-bench >/dev/null 2>&1)
bench="$(target_dir)/release/natsring-bench"
small=${SMALL:-200000}; large=${LARGE:-600000}

total() {
  local count=$1 port out pid
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  out=$(mktemp -u /tmp/natsring-callgrind.XXXXXX)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" -a 127.0.0.1 -p "$port" \
    --shards 1 "${server_args[@]}" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 300); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  "$bench" "$mode" --server "127.0.0.1:$port" --size 16 --msgs "$count" --stall 120 \
    "${bench_args[@]}" >/dev/null
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
  rm -f "$out"
}

a=$(total "$small"); b=$(total "$large")
echo "$mode $binary: $(( (b - a) / (large - small) )) instructions/msg"
