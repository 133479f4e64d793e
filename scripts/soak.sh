#!/usr/bin/env bash
# Soak test: natsring --shards 2 under steady, checked traffic and connection churn for
# MINUTES (default 10), watching the server's memory and descriptors.
#
#   scripts/soak.sh [MINUTES] [soak.py options...]     e.g. scripts/soak.sh 1
#
# Builds the release server, starts it on a free loopback port (-p -1, read back from its
# ports file), runs scripts/soak.py (Python standard library only: raw sockets) against it,
# stops the server. soak.py's docstring describes the load and the checks: no message lost on
# the healthy subscribers, descriptors back to the baseline after the churners close, RSS flat
# after the warm-up. Prints one summary line; exits non-zero on any failure (or if the server
# dies).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

minutes="${1:-10}"
shift || true

if ! command -v python3 >/dev/null 2>&1; then
  echo "# installing python3 with apt-get"
  apt_install python3
fi
# Churners and subscribers together hold a few hundred descriptors at most; raise the soft
# limit anyway so that a leak shows as a failed check, not as EMFILE in the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --bin natsring
server="$(target_dir)/release/natsring"

work="$(mktemp -d -t natsring-soak.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$server" -a 127.0.0.1 -p -1 --shards 2 \
  --ports_file_dir "$work" 2>"$work/server.log" &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  ports_file="$(ls "$work"/*.ports 2>/dev/null | head -n 1 || true)"
  if [ -n "$ports_file" ]; then
    port="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nats"][0].rsplit(":",1)[1])' "$ports_file")"
    break
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "soak: the server did not start" >&2
  cat "$work/server.log" >&2
  exit 1
fi
echo "# natsring pid $server_pid on 127.0.0.1:$port, --shards 2, $minutes min" >&2

status=0
python3 scripts/soak.py --port "$port" --pid "$server_pid" --minutes "$minutes" --shards 2 "$@" ||
  status=$?
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "soak: FAIL the server exited during the run" >&2
  tail -n 20 "$work/server.log" >&2
  status=1
fi
exit "$status"
