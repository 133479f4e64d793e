#!/usr/bin/env python3
"""Server CPU per message: publisher and subscriber on the same shard vs on different shards.

Starts `natsring --shards 2` (release build), places a raw-protocol publisher and subscriber on
chosen shards (a connection's shard is `(client_id - 1) % shards`, from its INFO), sends
MESSAGES messages of PAYLOAD bytes in large writes, waits until the subscriber has them all,
and reads the server's CPU time (all threads, /proc/PID/task/*/schedstat) around the run.
Alternates same / cross for ROUNDS rounds and prints medians and their ratio.

usage: scripts/cross_shard_cost.py [binary] [--messages N] [--payload B] [--rounds R]
"""
import argparse, json, os, socket, statistics, subprocess, sys, threading, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

def cpu_seconds(pid):
    """CPU time of every thread of the process, in seconds, at nanosecond resolution
    (/proc/PID/task/*/schedstat; /proc/PID/stat counts only in clock ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass
    return total / 1e9

def connect_on(port, shard, shards):
    for _ in range(500):
        s = socket.create_connection(("127.0.0.1", port))
        buf = b""
        while not buf.endswith(b"\r\n"):
            buf += s.recv(4096)
        info = json.loads(buf[5:].strip())
        if (info["client_id"] - 1) % shards == shard:
            s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
            return s
        s.close()
    sys.exit(f"could not land a connection on shard {shard}")

def ping(s):
    s.sendall(b"PING\r\n")
    buf = b""
    while not buf.endswith(b"PONG\r\n"):
        chunk = s.recv(65536)
        if not chunk: sys.exit("server closed")
        buf += chunk

def run(port, pid, pub_shard, sub_shard, messages, payload):
    sub = connect_on(port, sub_shard, 2)
    pub = connect_on(port, pub_shard, 2)
    sub.sendall(b"SUB bench 1\r\n"); ping(sub)
    frame = b"PUB bench %d\r\n" % payload + b"x" * payload + b"\r\n"
    batch = 1000
    blob = frame * batch
    got = [0]
    expected_bytes = messages * len(b"MSG bench 1 %d\r\n" % payload + b"x" * payload + b"\r\n")
    def reader():
        # Counts message bytes; a keepalive PING from the server (the first comes ~2 s after
        # connect) is not one. Payloads are all 'x', so "PING" can only be the server's.
        total, tail = 0, b""
        while total < expected_bytes:
            chunk = sub.recv(1 << 20)
            if not chunk: break
            window = tail + chunk
            total += len(chunk) - 6 * (window.count(b"PING\r\n") - tail.count(b"PING\r\n"))
            tail = window[-5:]
        got[0] = total
    t = threading.Thread(target=reader); t.start()
    before = cpu_seconds(pid); start = time.perf_counter()
    for _ in range(messages // batch):
        pub.sendall(blob)
    t.join(timeout=120)
    elapsed = time.perf_counter() - start; after = cpu_seconds(pid)
    pub.close(); sub.close()
    if got[0] != expected_bytes:
        sys.exit(f"subscriber got {got[0]} of {expected_bytes} bytes")
    return (after - before) / messages * 1e9, messages / elapsed

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default="target/release/natsring")
    ap.add_argument("--messages", type=int, default=2_000_000)
    ap.add_argument("--payload", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    port = free_port()
    server = subprocess.Popen([a.binary, "-a", "127.0.0.1", "-p", str(port), "--shards", "2"],
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try: socket.create_connection(("127.0.0.1", port)).close(); break
            except OSError: time.sleep(0.05)
        results = {"same": [], "cross": []}
        for r in range(a.rounds):
            for name, (p, s) in (("same", (0, 0)), ("cross", (0, 1))):
                ns, rate = run(port, server.pid, p, s, a.messages, a.payload)
                results[name].append((ns, rate))
                print(f"round {r + 1} {name:5}: {ns:7.1f} ns server CPU/msg, {rate / 1e6:5.2f} M msg/s", flush=True)
        same = statistics.median(x[0] for x in results["same"])
        cross = statistics.median(x[0] for x in results["cross"])
        print(f"median server CPU per message ({a.payload} B payload, {a.messages} messages): "
              f"same shard {same:.1f} ns, cross shard {cross:.1f} ns, ratio {cross / same:.2f}")
    finally:
        server.terminate(); server.wait()

if __name__ == "__main__":
    main()
