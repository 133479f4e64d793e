#!/usr/bin/env python3
"""Probes nats-server's permission decisions over raw sockets and prints the exact bytes it
sends, for the expectations in src/auth/permissions.rs. Starts nats-server on 127.0.0.1 with
an ephemeral port and stops it (by its own PID) at the end.

Usage: scripts/permissions_probe.py [path/to/nats-server]
"""
import os, socket, subprocess, sys, tempfile, time

BINARY = sys.argv[1] if len(sys.argv) > 1 else "/work/main/target/python-venv/bin/nats-server"

CONFIG = """
listen: 127.0.0.1:-1
authorization {
  users: [
    { user: pub, password: p, permissions: { publish: { allow: ["foo.*", "bar.>"], deny: ["foo.secret"] } } }
    { user: empty, password: p, permissions: { publish: { allow: [] }, subscribe: { allow: [] } } }
    { user: sub, password: p, permissions: { subscribe: { allow: ["foo.*", "*.*", "lit.bar", "q.> v1.*", "both", "both v2"], deny: ["foo.secret", "foo.q grp"] } } }
    { user: svc, password: p, permissions: { subscribe: "req", allow_responses: { max: 2, expires: "5s" } } }
    { user: svcx, password: p, permissions: { subscribe: "reqx", allow_responses: { max: -1, expires: "300ms" } } }
    { user: svc1, password: p, permissions: { subscribe: "req", allow_responses: true } }
    { user: any, password: p }
  ]
}
"""

def read_all(sock, wait=0.25):
    sock.settimeout(wait)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data

def client(port, user):
    sock = socket.create_connection(("127.0.0.1", port))
    read_all(sock, 0.2)  # INFO
    sock.sendall(('CONNECT {"verbose":true,"pedantic":false,"user":"%s","pass":"p","headers":true}\r\nPING\r\n' % user).encode())
    got = read_all(sock)
    assert got == b"+OK\r\nPONG\r\n", (user, got)
    return sock

def exchange(sock, data, wait=0.25):
    sock.sendall(data)
    return read_all(sock, wait)

def show(label, got):
    print(f"{label}: {got!r}")

def main():
    with tempfile.TemporaryDirectory() as directory:
        conf = os.path.join(directory, "perms.conf")
        with open(conf, "w") as f:
            f.write(CONFIG)
        log = os.path.join(directory, "log")
        server = subprocess.Popen([BINARY, "-c", conf, "-l", log, "-ports_file_dir", directory],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ports = None
            for _ in range(100):
                files = [n for n in os.listdir(directory) if n.endswith(".ports")]
                if files:
                    import json
                    with open(os.path.join(directory, files[0])) as f:
                        ports = json.load(f)
                    break
                time.sleep(0.05)
            port = int(ports["nats"][0].rsplit(":", 1)[1])
            probe(port)
        finally:
            server.terminate()
            server.wait()
            print("--- server log (violations) ---")
            with open(log) as f:
                for line in f:
                    if "Violation" in line:
                        print(line.rstrip().split("] ", 1)[-1])

def probe(port):
    any_user = client(port, "any")
    show("any SUB > 1", exchange(any_user, b"SUB > 1\r\nPING\r\n"))

    pub = client(port, "pub")
    for subject in [b"foo.bar", b"foo.secret", b"foo.bar.baz", b"bar.x.y", b"bar", b"baz",
                    b"foo.*", b"foo.>", b"bar.>", b"foo..bar", b"_GR_.x", b"_GR_.", b"$NRG.x"]:
        show(b"pub PUB " + subject, exchange(pub, b"PUB " + subject + b" 2\r\nhi\r\nPING\r\n"))
    for reply in [b"_R_.", b"_R_.x", b"$JS.ACK.", b"$JS.ACK.x", b"_GR_.", b"_GR_.x", b"_INBOX.x"]:
        show(b"pub PUB foo.bar reply " + reply, exchange(pub, b"PUB foo.bar " + reply + b" 2\r\nhi\r\nPING\r\n"))
    show("pub PUB foo.secret with reserved reply", exchange(pub, b"PUB foo.secret _R_.x 2\r\nhi\r\nPING\r\n"))
    show("any PUB with reserved reply", exchange(any_user, b"PUB x _R_.x 2\r\nhi\r\nPING\r\n"))
    show("any PUB _GR_.x", exchange(any_user, b"PUB _GR_.x 2\r\nhi\r\nPING\r\n"))
    show("any PUB $NRG.x", exchange(any_user, b"PUB $NRG.x 2\r\nhi\r\nPING\r\n"))
    show("any PUB $NRG.", exchange(any_user, b"PUB $NRG. 2\r\nhi\r\nPING\r\n"))
    show("any SUB foo _sys_", exchange(any_user, b"SUB foo _sys_ 9\r\nPING\r\n"))
    show("pub PUB quoting", exchange(pub, b'PUB a"b\\c\xff\xc3\xa9 2\r\nhi\r\nPING\r\n'))

    empty = client(port, "empty")
    show("empty PUB x", exchange(empty, b"PUB x 2\r\nhi\r\nPING\r\n"))
    show("empty SUB x", exchange(empty, b"SUB x 1\r\nPING\r\n"))

    sub = client(port, "sub")
    sid = 1
    for line in [b"foo.bar", b"foo.*", b"foo.>", b"*.bar", b"lit.*", b"lit.bar", b"x.>", b">",
                 b"foo.secret", b"foo.bar.baz", b"foo..bar", b"q.a v1.x", b"q.a v2", b"q.a",
                 b"both", b"both v2", b"both v3", b"foo.q grp", b"foo.q other", b"foo.* grp",
                 b"foo.bar _sys_", b"foo.* zzz"]:
        show(b"sub SUB " + line, exchange(sub, b"SUB " + line + b" %d\r\nPING\r\n" % sid))
        sid += 1
    # Deliveries to the wildcard subscriptions: foo.secret is denied (to every sub of this
    # connection), foo.q only to the queue sub in grp2.
    sub.close()  # its queue subscriptions would share the groups below
    sub2 = client(port, "sub")
    show("sub2 SUB foo.* 1, foo.* grp 2, foo.* other 3, foo.> 5", exchange(sub2, b"SUB foo.* 1\r\nSUB foo.* grp 2\r\nSUB foo.* other 3\r\nSUB foo.> 5\r\nPING\r\n"))
    exchange(any_user, b"PUB foo.secret 1\r\nx\r\nPUB foo.q 1\r\ny\r\nPUB foo.ok 1\r\nz\r\nPUB foo.a.b 1\r\nw\r\nPING\r\n", 0.05)
    show("sub2 deliveries", read_all(sub2, 0.4))
    sub2.close()
    sub3 = client(port, "sub")
    show("sub3 SUB foo.q zzz 1 (literal queue sub, deny is for grp)", exchange(sub3, b"SUB foo.q zzz 1\r\nSUB foo.* grp 2\r\nPING\r\n"))
    exchange(any_user, b"PUB foo.q 1\r\ny\r\nPING\r\n", 0.05)
    show("sub3 deliveries", read_all(sub3, 0.3))

    # allow_responses: max 2, expires 5s.
    svc = client(port, "svc")
    show("svc SUB req", exchange(svc, b"SUB req 1\r\nPING\r\n"))
    show("svc PUB r1 before request", exchange(svc, b"PUB r1 1\r\nx\r\nPING\r\n", 0.05))
    exchange(any_user, b"PUB req r1 1\r\nq\r\nPING\r\n", 0.05)
    show("svc got request", read_all(svc, 0.05))
    for i in range(3):
        show(f"svc PUB r1 #{i + 1}", exchange(svc, b"PUB r1 1\r\nx\r\nPING\r\n", 0.05))
    # A second request with the same reply while the first is open counts as a response.
    exchange(any_user, b"PUB req r3 1\r\nq\r\nPUB req r3 1\r\nq\r\nPING\r\n", 0.05)
    read_all(svc, 0.05)
    for i in range(3):
        show(f"svc PUB r3 #{i + 1} after two requests", exchange(svc, b"PUB r3 1\r\nx\r\nPING\r\n", 0.05))
    # Used up, then requested again: tracked afresh.
    exchange(any_user, b"PUB req r1 1\r\nq\r\nPING\r\n", 0.05)
    read_all(svc, 0.05)
    show("svc PUB r1 after a new request", exchange(svc, b"PUB r1 1\r\nx\r\nPING\r\n", 0.05))

    # max -1 (unlimited), expires 300ms.
    svcx = client(port, "svcx")
    exchange(svcx, b"SUB reqx 1\r\nPING\r\n")
    exchange(any_user, b"PUB reqx x1 1\r\nq\r\nPING\r\n", 0.05)
    read_all(svcx, 0.05)
    for i in range(4):
        show(f"svcx PUB x1 #{i + 1} within expiry", exchange(svcx, b"PUB x1 1\r\nx\r\nPING\r\n", 0.02))
    time.sleep(0.4)
    show("svcx PUB x1 after expiry", exchange(svcx, b"PUB x1 1\r\nx\r\nPING\r\n", 0.05))

    svc1 = client(port, "svc1")
    exchange(svc1, b"SUB req 1\r\nPING\r\n")
    exchange(any_user, b"PUB req s1 1\r\nq\r\nPING\r\n")
    read_all(svc1, 0.2)
    show("svc1 PUB s1 #1", exchange(svc1, b"PUB s1 1\r\nx\r\nPING\r\n", 0.1))
    show("svc1 PUB s1 #2", exchange(svc1, b"PUB s1 1\r\nx\r\nPING\r\n", 0.1))
    show("svc1 SUB other", exchange(svc1, b"SUB other 2\r\nPING\r\n", 0.1))

if __name__ == "__main__":
    main()
