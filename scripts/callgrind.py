#!/usr/bin/env python3
"""Server instructions per message, counted exactly by valgrind's callgrind: the same-shard and
cross-shard pubsub 1 -> 1 paths (16 B payload unless --payload).

For each placement, starts `natsring --shards 2` under `valgrind --tool=callgrind`, places a
raw-protocol publisher and subscriber on the chosen shards (scripts/cross_shard_cost.py's
client), sends SMALL then, on a second server, LARGE messages, stops the server (SIGTERM) and
reads the total instruction count (`summary:` of the callgrind output). Instructions per message
= (total(LARGE) - total(SMALL)) / (LARGE - SMALL): start-up, connecting and shutdown cancel out.
Counts are repeatable for the same binary whatever else the machine does, so one run is enough
and a before/after comparison needs no rounds.

usage: scripts/callgrind.py [binary ...] [--payload B] [--small N] [--large N]
  (default binary: $CARGO_TARGET_DIR or target/, release/natsring; several binaries are
  measured one after the other, e.g. a saved "before" build and the current one)
"""
import argparse, os, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cross_shard_cost  # noqa: E402


def total_instructions(binary, pub_shard, sub_shard, messages, payload):
    port = cross_shard_cost.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             binary, "-a", "127.0.0.1", "-p", str(port), "--shards", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port)).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        sys.exit(f"{binary} under valgrind did not start")
                    time.sleep(0.2)
            cross_shard_cost.run(port, server.pid, pub_shard, sub_shard, messages, payload)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
        total = 0
        for name in os.listdir(tmp):
            # One file per process (and per thread with --separate-threads, not used here).
            with open(os.path.join(tmp, name)) as f:
                for line in f:
                    if line.startswith("summary:"):
                        total += int(line.split()[1])
        return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs="*")
    ap.add_argument("--payload", type=int, default=16)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--large", type=int, default=600_000)
    a = ap.parse_args()
    if not a.binaries:
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target")
        a.binaries = [os.path.join(target, "release", "natsring")]
    for binary in a.binaries:
        for name, (pub_shard, sub_shard) in (("same shard", (0, 0)), ("cross shard", (0, 1))):
            small = total_instructions(binary, pub_shard, sub_shard, a.small, a.payload)
            large = total_instructions(binary, pub_shard, sub_shard, a.large, a.payload)
            per = (large - small) / (a.large - a.small)
            print(f"{binary}: {name:11} {per:7.1f} instructions per message "
                  f"({a.payload} B; {a.small:,} and {a.large:,} messages)", flush=True)


if __name__ == "__main__":
    main()
