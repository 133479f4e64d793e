# Shared by the scripts in this directory (sourced, not run).
#
#   target_dir      prints where cargo puts this workspace's build output: $CARGO_TARGET_DIR
#                   when set, `build.target-dir` from a cargo config, else target/; taken
#                   from `cargo metadata`, so the scripts find the binaries wherever cargo
#                   put them.
#   use_python_venv creates (once) and activates a Python virtual environment under the
#                   target directory, so that pip installs never touch the system Python
#                   (Debian's refuses them: "externally-managed-environment"). Installs
#                   Debian's python3-venv if `python3 -m venv` is missing. Its bin/ goes
#                   first on PATH, so a nats-server installed there is the one found.
#   pip_install PKG...
#                   pip install into that environment, quietly.
#   apt_install PKG...
#                   apt-get install, non-interactive (the CI machine has apt and root).
#   node_clients_install
#                   `npm ci` in tests/clients/node (nats.js, as package-lock.json pins it)
#                   unless node_modules/nats is there already: both tests/clients/node/*.mjs
#                   and tests/tls.rs (which runs tls.mjs) resolve `nats` from it.

NATSRING_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

target_dir() {
  cargo metadata --format-version 1 --no-deps --manifest-path "$NATSRING_ROOT/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

apt_install() {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

use_python_venv() {
  local venv
  venv="$(target_dir)/python-venv"
  if [ ! -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -m pip --version >/dev/null 2>&1; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      echo "# installing python3-venv with apt-get"
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
  fi
  export VIRTUAL_ENV="$venv"
  export PATH="$venv/bin:$PATH"
  hash -r
}

node_clients_install() {
  local dir="$NATSRING_ROOT/tests/clients/node"
  if [ ! -d "$dir/node_modules/nats" ]; then
    echo "# npm ci in tests/clients/node"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

pip_install() {
  python3 -m pip install -q --disable-pip-version-check "$@"
}
