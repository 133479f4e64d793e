#!/usr/bin/env bash
# README's two commands, run literally as a new user would (CI runs this):
#   1. the server command (the first ```sh block under "## Two commands on a fresh machine"):
#      started in its own process group, a client connects to 127.0.0.1:4222 and gets PONG for
#      its PING, then the group gets SIGINT (Ctrl-C) and must exit;
#   2. the test command (the second block), run as it is written.
# Whatever the environment sets (CARGO_TARGET_DIR, say) applies to both.
#
#   scripts/readme-commands.sh [server|test|both]    (default both)
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:-both}"

# The first two ```sh blocks of the section, one command each.
mapfile -t commands < <(python3 - <<'EOF'
import re
text = open("README.md").read()
section = text.split("## Two commands on a fresh machine", 1)[1].split("\n## ", 1)[0]
blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
for block in blocks[:2]:
    lines = [l for l in block.strip().splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert len(lines) == 1, f"one command per block, got {lines!r}"
    print(lines[0])
EOF
)
[ "${#commands[@]}" -eq 2 ] || { echo "readme-commands: README's two commands not found" >&2; exit 1; }
server_command="${commands[0]}"
test_command="${commands[1]}"

run_server_command() {
  echo "# README's server command: $server_command"
  local log pid
  log="$(mktemp -t natsring-readme-server.XXXXXX)"
  # A release build comes first: allow it the time it takes.
  setsid bash -c "$server_command" >"$log" 2>&1 &
  pid=$!
  stop() { kill -INT -- "-$pid" 2>/dev/null || true; }
  trap 'stop; rm -f "$log"' RETURN
  if ! python3 - "$pid" <<'EOF'
import os, socket, sys, time
pid = int(sys.argv[1])
deadline = time.monotonic() + 900
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the server command exited before it served")
    try:
        s = socket.create_connection(("127.0.0.1", 4222), timeout=2)
    except OSError:
        time.sleep(0.5)
        continue
    s.settimeout(10)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("closed before INFO")
        data += chunk
    assert data.startswith(b"INFO {"), data
    s.sendall(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
    data = b""
    while b"PONG\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("closed before PONG")
        data += chunk
    print("# 127.0.0.1:4222 answered: INFO, then PONG for PING")
    sys.exit(0)
sys.exit("nothing listened on 127.0.0.1:4222 within 15 minutes")
EOF
  then
    echo "# server output:"; sed 's/^/#   /' "$log"
    return 1
  fi
  stop
  local status=0
  # Ctrl-C ends cargo and the server: both must be gone within 10 s.
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "# the server command did not stop on SIGINT" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
    status=1
  fi
  wait "$pid" 2>/dev/null || true
  echo "# the server stopped on SIGINT"
  return "$status"
}

case "$which" in
  server) run_server_command ;;
  test)
    echo "# README's test command: $test_command"
    bash -c "$test_command"
    ;;
  both)
    run_server_command
    echo "# README's test command: $test_command"
    bash -c "$test_command"
    ;;
  *) echo "usage: $0 [server|test|both]" >&2; exit 2 ;;
esac
