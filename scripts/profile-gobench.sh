#!/usr/bin/env bash
# Where natsring's CPU goes under the real Go client: natsring --shards 1 on CPU 0, one
# natsring-gobench run on CPU 1, `perf record -e cpu-clock -g` of the server for RECORD_SECONDS in the
# middle of it, then the top symbols (kernel and user, no children).
#
#   scripts/profile-gobench.sh [natsring flags ...] -- <gobench args>
#   scripts/profile-gobench.sh -- pub --size 1024 --msgs 8000000
#   scripts/profile-gobench.sh --busy_poll 0 -- req --size 128 --msgs 50000
#
# Needs perf (apt-get install linux-perf) and the binaries scripts/bench.sh builds.
# RECORD_SECONDS (default 2) and DELAY (default 1) are environment variables; PROFILE_GENERATOR
# another generator with the same command line (e.g. target/release/examples/natsring-asyncbench).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
target="$(target_dir)/release"
server_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do server_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "usage: $0 [natsring flags ...] -- <gobench args>" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf missing (apt-get install linux-perf)" >&2; exit 1; }
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
data="$(mktemp -t natsring-perf.XXXXXX)"
taskset -c 0 "$target/natsring" -a 127.0.0.1 -p "$port" --shards 1 "${server_args[@]}" >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$data"' EXIT
sleep 0.5
taskset -c 1 "${PROFILE_GENERATOR:-$target/natsring-gobench}" "$@" --server "127.0.0.1:$port" --server-pid "$server" --json &
client=$!
sleep "${DELAY:-1}"
perf record -q -e cpu-clock -g -p "$server" -o "$data" -- sleep "${RECORD_SECONDS:-2}" >/dev/null 2>&1
wait "$client"
perf report -i "$data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -30
