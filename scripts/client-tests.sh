#!/usr/bin/env bash
# Client conformance: run the official Python (nats-py) and JavaScript (nats.js)
# clients against a NATS server binary.
#
# Usage: scripts/client-tests.sh <server-binary> [extra server args...]
#   e.g. scripts/client-tests.sh nats-server
#        scripts/client-tests.sh "$(cargo metadata --format-version 1 --no-deps |
#            python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/natsring"
#   (scripts/test.sh passes the binary from wherever cargo put it)
#
# Starts the binary with `-a 127.0.0.1 -p -1 --ports_file_dir <tmp> [extra args]` (reads
# the port back from the ports file), runs
# tests/clients/python/conformance.py and tests/clients/node/conformance.mjs,
# stops the server, and ends with one line `N passed, M failed` (both suites).
# Exits non-zero if any case failed. The whole run is bounded (< 60 s once the
# client libraries are installed).
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"
PY_DIR="$ROOT/tests/clients/python"
NODE_DIR="$ROOT/tests/clients/node"
SUITE_TIMEOUT=22   # seconds per suite; each case also has its own 6 s timeout
START_TIMEOUT=10   # seconds to wait for the server to accept connections

if [ $# -lt 1 ]; then
  echo "usage: $0 <server-binary> [extra server args...]" >&2
  exit 2
fi
SERVER="$1"
shift
if ! SERVER_PATH="$(command -v "$SERVER")"; then
  echo "server binary not found: $SERVER" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# ---- client libraries -------------------------------------------------------
# nats-py lives in the virtual environment under the target directory (scripts/lib.sh).
use_python_venv
if ! python3 -c 'import nats' >/dev/null 2>&1; then
  echo "# installing nats-py==2.16.0"
  pip_install nats-py==2.16.0 || echo "# pip install nats-py failed" >&2
fi
node_clients_install || echo "# npm ci failed" >&2

# ---- server -----------------------------------------------------------------
# The server picks a random port (-p -1) and announces it in its ports file: choosing a free
# port here and passing it would race with anything else binding ports meanwhile.
PORTS_DIR="$(mktemp -d -t client-tests-ports.XXXXXX)"
LOG="$(mktemp -t client-tests-server.XXXXXX.log)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  rm -f "$LOG"
  rm -rf "$PORTS_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$SERVER_PATH" -a 127.0.0.1 -p -1 --ports_file_dir "$PORTS_DIR" "$@" >"$LOG" 2>&1 &
SERVER_PID=$!

if ! PORT="$(python3 - "$PORTS_DIR" "$START_TIMEOUT" "$SERVER_PID" <<'EOF'
import glob, json, os, socket, sys, time
ports_dir, limit, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + limit
port = None
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("server exited before accepting connections")
    if port is None:
        for path in glob.glob(os.path.join(ports_dir, "*.ports")):
            try:
                port = int(json.load(open(path))["nats"][0].rsplit(":", 1)[1])
            except (OSError, ValueError, KeyError, IndexError):
                pass
    if port is not None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            print(port)
            sys.exit(0)
        except OSError:
            pass
    time.sleep(0.05)
sys.exit(f"server did not announce and accept connections within {limit:g}s")
EOF
)"; then
  echo "# server log:"; tail -n 20 "$LOG" | sed 's/^/#   /'
  echo "0 passed, 1 failed"
  exit 1
fi
echo "# server: $SERVER_PATH -a 127.0.0.1 -p -1 --ports_file_dir $PORTS_DIR $* (pid $SERVER_PID, port $PORT)"
URL="nats://127.0.0.1:$PORT"

# ---- suites -----------------------------------------------------------------
TOTAL_PASS=0
TOTAL_FAIL=0

# run_suite <label> <dir> <cmd...>: runs the suite, prefixes its lines, and
# counts passes against the suite's own case list, so a suite that crashes or
# is killed by the timeout counts every unreported case as failed.
run_suite() {
  local label="$1" dir="$2"
  shift 2
  local expected out rc passed failed
  expected="$(cd "$dir" && timeout 10 "$@" --list 2>/dev/null | grep -c .)"
  out="$(cd "$dir" && timeout "$SUITE_TIMEOUT" "$@" "$URL" 2>&1)"
  rc=$?
  printf '%s\n' "$out" | sed "s/^/[$label] /"
  passed="$(printf '%s\n' "$out" | grep -c '^ok ')"
  [ "${expected:-0}" -gt 0 ] || expected=$((passed + 1))
  failed=$((expected - passed))
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1   # suite failed outside any case
  fi
  if [ "$rc" -eq 124 ]; then
    echo "[$label] suite killed after ${SUITE_TIMEOUT}s"
  fi
  if [ "$rc" -ne 0 ]; then
    echo "[$label] exit $rc: counted $passed of $expected cases as passed"
  fi
  TOTAL_PASS=$((TOTAL_PASS + passed))
  TOTAL_FAIL=$((TOTAL_FAIL + failed))
}

run_suite python "$PY_DIR" python3 conformance.py
run_suite node "$NODE_DIR" node conformance.mjs

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  wait "$SERVER_PID"
  echo "# server exited during the run (status $?)"
  TOTAL_FAIL=$((TOTAL_FAIL + 1))
fi
if [ "$TOTAL_FAIL" -ne 0 ]; then
  echo "# last server log lines:"; tail -n 20 "$LOG" | sed 's/^/#   /'
fi

echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ]
