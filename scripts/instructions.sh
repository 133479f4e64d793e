#!/usr/bin/env bash
# Server instructions per message, counted by valgrind's callgrind: natsring under
# `valgrind --tool=callgrind` with one shard, driven by natsring-bench twice (SMALL then LARGE
# messages, each on a fresh server). Two figures:
# - the whole server: (total(LARGE) - total(SMALL)) / (LARGE - SMALL), so start-up, connecting
#   and shutdown cancel out. It still follows how the kernel batched the input (per-read and
#   per-round work is spread over the messages of a read), so runs of one binary differ by up
#   to ~30 instructions a message: repeat it, or compare the second figure;
# - the publish path: instructions in `on_pub` and what it calls (callgrind_annotate's
#   inclusive count of its costliest entry), per message. Once per message, so it is the same
#   in every run to within an instruction: this is the one for changes of a few instructions.
# Needs valgrind (apt-get install valgrind).
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
  # Under valgrind a SIGTERM is sometimes lost (the server then runs on): send it again each
  # second until the server has gone.
  kill -TERM "$pid"
  for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 1; kill -TERM "$pid" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
  # "TOTAL ON_PUB": the whole count, and on_pub's inclusive count (commas dropped).
  echo "$(awk '/^(summary|totals):/ {print $2; exit}' "$out")" \
    "$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null \
      | awk '/::on_pub( |$)/ {gsub(",", "", $1); print $1; exit}')"
  rm -f "$out"
}

read -r a a_pub < <(total "$small"); read -r b b_pub < <(total "$large")
echo "$mode $binary: $(( (b - a) / (large - small) )) instructions/msg," \
  "$(( (b_pub - a_pub) / (large - small) )) of them in on_pub"

