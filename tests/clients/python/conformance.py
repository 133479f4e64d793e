#!/usr/bin/env python3
"""Client conformance suite: drives a NATS server with the official nats-py client.

Usage: python3 conformance.py [nats://127.0.0.1:4222]   (or NATS_URL in the environment)
       python3 conformance.py --list                    (print the case names)
CASES=a,b limits the run to those cases; VERBOSE=1 prints tracebacks.

Each case prints `ok <name>` or `FAIL <name>: <why>`; the run ends with
`N passed, M failed` and exits 0 only if every case passed. Every case runs
under its own timeout, so a misbehaving server cannot hang the suite.
"""

import asyncio
import os
import sys
import time
import traceback

import nats
from nats import errors

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
URL = ARGS[0] if ARGS else os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
CASE_TIMEOUT = 6.0
MAX_PAYLOAD = 1048576


class CaseFailure(Exception):
    pass


def check(cond, why):
    if not cond:
        raise CaseFailure(why)


async def _swallow(_e):
    # Quiet error callback; connections that expect errors inspect last_error.
    pass


async def connect(**kw):
    opts = dict(
        servers=[URL],
        allow_reconnect=False,
        connect_timeout=3,
        max_reconnect_attempts=0,
        error_cb=_swallow,
    )
    opts.update(kw)
    return await nats.connect(**opts)


class Conns:
    """Tracks connections opened by a case so they are always closed."""

    def __init__(self):
        self.all = []

    async def new(self, **kw):
        nc = await connect(**kw)
        self.all.append(nc)
        return nc

    async def close(self):
        for nc in self.all:
            if not nc.is_closed:
                try:
                    await asyncio.wait_for(nc.close(), 2)
                except Exception:
                    pass


async def sync(nc, timeout=3.0):
    """Round trip that really follows everything sent so far.

    nats-py 2.16.0's flush() writes its PING straight to the socket, while
    PUB/SUB commands wait in a pending buffer for the flusher task; so a PONG
    can come back before the server has seen earlier commands (seen here as
    sporadic lost messages / no-responders). Wait for the flusher to empty
    the buffer first, then flush.
    """
    deadline = time.monotonic() + timeout
    while nc._pending and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    check(not nc._pending, "client never flushed its pending buffer")
    await nc.flush(timeout=timeout)


async def collect(sub, n, timeout=3.0):
    """Read exactly n messages (or fail); returns them."""
    msgs = []
    deadline = time.monotonic() + timeout
    while len(msgs) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            msgs.append(await sub.next_msg(timeout=left))
        except errors.TimeoutError:
            break
    return msgs


async def expect_none(sub, wait=0.3):
    try:
        m = await sub.next_msg(timeout=wait)
    except errors.TimeoutError:
        return None
    return m


def _host_port():
    hp = URL.split("://", 1)[-1].rsplit("@", 1)[-1]
    host, port = hp.rsplit(":", 1)
    return host, int(port)


async def raw_exchange(payload, wait=3.0):
    """Raw TCP: read INFO, send `payload`, collect replies until the server
    closes or `wait` passes. Returns (bytes after INFO, closed_by_server)."""
    host, port = _host_port()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 3)
    closed = False
    buf = b""
    try:
        await asyncio.wait_for(reader.readline(), 3)  # INFO
        writer.write(payload)
        await writer.drain()
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except asyncio.TimeoutError:
                break
            except ConnectionError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
    finally:
        writer.close()
    return buf, closed


# ---------------------------------------------------------------- cases


async def case_connect_info(c):
    nc = await c.new()
    info = nc._server_info
    check(isinstance(info, dict) and info, "no server INFO seen by client")
    check(info.get("headers") is True, f"INFO headers = {info.get('headers')!r}, want true")
    check(info.get("max_payload") == MAX_PAYLOAD, f"INFO max_payload = {info.get('max_payload')!r}")
    check(nc.max_payload == MAX_PAYLOAD, f"client max_payload = {nc.max_payload}")
    sid = info.get("server_id")
    check(isinstance(sid, str) and sid, f"INFO server_id = {sid!r}")
    check(nc.is_connected, "client not in CONNECTED state")
    check(isinstance(info.get("proto"), int) and info["proto"] >= 1, f"INFO proto = {info.get('proto')!r}")


async def case_pubsub_literal(c):
    sub_nc = await c.new()
    pub_nc = await c.new()
    sub = await sub_nc.subscribe("conf.literal")
    await sync(sub_nc)
    for i in range(100):
        await pub_nc.publish("conf.literal", f"msg-{i}".encode())
    await sync(pub_nc)
    msgs = await collect(sub, 100)
    check(len(msgs) == 100, f"received {len(msgs)} of 100")
    for i, m in enumerate(msgs):
        check(m.subject == "conf.literal", f"msg {i} subject {m.subject!r}")
        check(m.data == f"msg-{i}".encode(), f"msg {i} payload {m.data!r} (out of order or corrupt)")
    check(await expect_none(sub) is None, "extra message after the 100")


async def case_wildcards(c):
    nc = await c.new()
    star = await nc.subscribe("a.*")
    full = await nc.subscribe("a.>")
    mid = await nc.subscribe("*.b.*")
    await sync(nc)
    for subj in ["a.b", "a.b.c", "b.x", "a", "a.c.d.e"]:
        await nc.publish(subj, subj.encode())
    await sync(nc)
    got_star = [m.subject for m in await collect(star, 1)]
    check(got_star == ["a.b"], f"'a.*' got {got_star}, want ['a.b']")
    check(await expect_none(star) is None, "'a.*' got more than a.b")
    got_full = [m.subject for m in await collect(full, 3)]
    check(got_full == ["a.b", "a.b.c", "a.c.d.e"], f"'a.>' got {got_full}, want [a.b, a.b.c, a.c.d.e]")
    check(await expect_none(full, 0.1) is None, "'a.>' got an extra message (a or b.x?)")
    got_mid = [m.subject for m in await collect(mid, 1)]
    check(got_mid == ["a.b.c"], f"'*.b.*' got {got_mid}, want ['a.b.c']")
    check(await expect_none(mid, 0.1) is None, "'*.b.*' got an extra message")


async def case_queue_group(c):
    n = 3000
    counts = [0, 0, 0]
    seen = {}
    done = asyncio.Event()

    def make_cb(idx):
        async def cb(msg):
            counts[idx] += 1
            k = msg.data
            seen[k] = seen.get(k, 0) + 1
            if sum(counts) >= n:
                done.set()

        return cb

    subs = []
    for i in range(3):
        nc = await c.new()
        subs.append(await nc.subscribe("conf.queue", queue="q", cb=make_cb(i), pending_msgs_limit=10 * n))
        await sync(nc)
    pub = await c.new()
    for i in range(n):
        await pub.publish("conf.queue", str(i).encode())
    await sync(pub)
    try:
        await asyncio.wait_for(done.wait(), 5)
    except asyncio.TimeoutError:
        pass
    await asyncio.sleep(0.2)  # catch duplicates arriving late
    total = sum(counts)
    check(total == n, f"group received {total} messages, want {n} (counts {counts})")
    dups = [k for k, v in seen.items() if v != 1]
    check(not dups, f"{len(dups)} messages delivered more than once")
    check(len(seen) == n, f"{n - len(seen)} messages missing")
    for i, k in enumerate(counts):
        share = k / n
        check(0.20 <= share <= 0.47, f"member {i} got {k} ({share:.0%}); counts {counts}, want each in 20%..47%")


async def case_request_reply(c):
    srv = await c.new()
    cli = await c.new()

    replies = []

    async def echo(msg):
        replies.append(msg.reply)
        await srv.publish(msg.reply, b"echo:" + msg.data)

    await srv.subscribe("svc.echo", cb=echo)
    await sync(srv)

    async def one(i):
        r = await cli.request("svc.echo", f"req-{i}".encode(), timeout=3)
        return i, r.data

    results = await asyncio.gather(*(one(i) for i in range(50)))
    for i, data in results:
        check(data == f"echo:req-{i}".encode(), f"request {i} got {data!r}")
    # The client multiplexes requests onto one wildcard inbox subscription
    # (_INBOX.<id>.*): every reply subject shares one prefix, with its own last token.
    check(len(replies) == 50, f"responder saw {len(replies)} requests")
    prefixes = {r.rsplit(".", 1)[0] for r in replies}
    check(len(prefixes) == 1, f"reply subjects do not share one muxed inbox: {sorted(prefixes)[:3]}")
    check(len(set(replies)) == 50, "reply subjects not unique per request")


async def case_headers(c):
    sub_nc = await c.new()
    pub_nc = await c.new()
    sub = await sub_nc.subscribe("conf.hdr")
    await sync(sub_nc)
    # nats-py headers are a dict, so a repeated key cannot be expressed; the
    # "multi-value" header is sent as one comma-joined value here, and a raw
    # HPUB with a repeated key is checked below.
    hdrs = {"X-Test": "1", "X-Multi": "a, b", "Content-Type": "text/plain"}
    await pub_nc.publish("conf.hdr", b"hello headers", headers=hdrs)
    await sync(pub_nc)
    msgs = await collect(sub, 1)
    check(len(msgs) == 1, "no message with headers received")
    m = msgs[0]
    check(m.data == b"hello headers", f"payload {m.data!r}")
    check(m.headers is not None, "headers missing on received message")
    for k, v in hdrs.items():
        check(m.headers.get(k) == v, f"header {k} = {m.headers.get(k)!r}, want {v!r} (all: {m.headers})")

    # Raw HPUB with a repeated key: the server must forward the header block
    # untouched; nats-py keeps the last value of a repeated key.
    hdr_block = b"NATS/1.0\r\nX-Test: 1\r\nX-Multi: first\r\nX-Multi: second\r\n\r\n"
    body = b"raw"
    resp, _ = await raw_exchange(
        b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n'
        + b"HPUB conf.hdr %d %d\r\n" % (len(hdr_block), len(hdr_block) + len(body))
        + hdr_block + body + b"\r\nPING\r\n",
        wait=0.5,
    )
    check(b"PONG" in resp and b"-ERR" not in resp, f"raw HPUB connection got {resp!r}")
    msgs = await collect(sub, 1)
    check(len(msgs) == 1, "raw HPUB with repeated header not delivered")
    m = msgs[0]
    check(m.data == body, f"raw HPUB payload {m.data!r}")
    check(m.headers and m.headers.get("X-Test") == "1", f"raw HPUB headers {m.headers}")
    check(m.headers.get("X-Multi") == "second", f"repeated header X-Multi = {m.headers.get('X-Multi')!r}")

    # Request with headers: the responder echoes a header back.
    async def responder(msg):
        v = (msg.headers or {}).get("X-Req", "")
        await pub_nc.publish(msg.reply, b"got:" + msg.data, headers={"X-Echo": v, "X-Test": "1"})

    await pub_nc.subscribe("svc.hdr", cb=responder)
    await sync(pub_nc)
    r = await sub_nc.request("svc.hdr", b"ping", timeout=3, headers={"X-Req": "abc"})
    check(r.data == b"got:ping", f"request-with-headers reply payload {r.data!r}")
    check(r.headers and r.headers.get("X-Echo") == "abc", f"reply headers {r.headers}")


async def case_no_responders(c):
    nc = await c.new()
    t0 = time.monotonic()
    try:
        await nc.request("conf.nobody.home", b"x", timeout=4)
    except errors.NoRespondersError:
        el = time.monotonic() - t0
        check(el < 1.0, f"no-responders error took {el:.2f}s")
        return
    except errors.TimeoutError:
        raise CaseFailure(f"request timed out after {time.monotonic() - t0:.2f}s instead of no-responders")
    raise CaseFailure("request to a subject with no subscribers succeeded")


async def case_echo_off(c):
    quiet = await c.new(no_echo=True)
    other = await c.new()
    sub = await quiet.subscribe("conf.echo")
    await sync(quiet)
    for i in range(3):
        await quiet.publish("conf.echo", f"self-{i}".encode())
    await sync(quiet)
    await other.publish("conf.echo", b"from-other")
    await sync(other)
    msgs = await collect(sub, 1)
    check(len(msgs) == 1, "message from another connection not received")
    check(msgs[0].data == b"from-other", f"got own message {msgs[0].data!r} despite echo=false")
    extra = await expect_none(sub)
    check(extra is None, f"unexpected extra message {extra.data if extra else None!r}")
    # Sanity: with echo on (default) a connection does see its own messages.
    echo_nc = await c.new()
    s2 = await echo_nc.subscribe("conf.echo2")
    await sync(echo_nc)
    await echo_nc.publish("conf.echo2", b"mine")
    got = await collect(s2, 1)
    check(len(got) == 1 and got[0].data == b"mine", "echo=true connection did not get its own message")


async def case_auto_unsubscribe(c):
    sub_nc = await c.new()
    pub_nc = await c.new()
    sub = await sub_nc.subscribe("conf.autounsub")
    await sub.unsubscribe(limit=5)  # UNSUB <sid> 5
    await sync(sub_nc)
    for i in range(10):
        await pub_nc.publish("conf.autounsub", str(i).encode())
    await sync(pub_nc)
    msgs = await collect(sub, 10, timeout=1.0)
    check([m.data for m in msgs] == [str(i).encode() for i in range(5)],
          f"received {[m.data for m in msgs]}, want the first 5")
    await sync(sub_nc)
    # The client also enforces the limit; in_msgs shows what the server sent.
    check(sub_nc.stats["in_msgs"] == 5, f"server delivered {sub_nc.stats['in_msgs']} messages, want 5")


async def case_large_payload(c):
    nc = await c.new()
    sub = await nc.subscribe("conf.big", pending_bytes_limit=8 * MAX_PAYLOAD)
    await sync(nc)
    payload = bytes((i * 7 + 3) & 0xFF for i in range(MAX_PAYLOAD))
    await nc.publish("conf.big", payload)
    await sync(nc)
    msgs = await collect(sub, 1, timeout=5)
    check(len(msgs) == 1, "1 MiB message not received")
    check(len(msgs[0].data) == MAX_PAYLOAD, f"received {len(msgs[0].data)} bytes")
    check(msgs[0].data == payload, "1 MiB payload corrupted")

    # max_payload + 1: the client refuses it before it reaches the wire.
    try:
        await nc.publish("conf.big", payload + b"x")
        raise CaseFailure("client accepted a max_payload+1 message")
    except errors.MaxPayloadError:
        pass
    check(nc.is_connected, "connection not usable after client-side rejection")
    await sync(nc)

    # What the server does with it, on a raw socket (the client would not send it):
    # a PUB control line announcing max_payload+1 bytes.
    data, closed = await raw_exchange(
        b'CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\n' + b"PUB conf.big %d\r\n" % (MAX_PAYLOAD + 1)
    )
    check(b"-ERR 'Maximum Payload Violation'" in data,
          f"server answered {data[:200]!r}, want -ERR 'Maximum Payload Violation'")
    check(closed, "server did not close the connection after the max payload violation")
    last = data.strip().split(b"\r\n")[-1].decode("latin1")
    print(f"  # max_payload+1: rejected client-side (MaxPayloadError); a raw PUB of that size got {last!r} and a close")
    extra = await expect_none(sub, 0.2)
    check(extra is None, "oversized message was delivered")


async def case_flush_ping(c):
    nc = await c.new()
    pongs_before = nc._pongs_received
    t0 = time.monotonic()
    for _ in range(5):
        await nc.flush(timeout=2)
    el = time.monotonic() - t0
    check(nc._pongs_received - pongs_before == 5, f"{nc._pongs_received - pongs_before} PONGs for 5 flushes")
    check(el < 2, f"5 flushes took {el:.2f}s")
    rtt = await nc.rtt()
    check(rtt >= 0 and rtt < 1, f"rtt {rtt}")


async def case_drain(c):
    nc = await c.new()
    pub = await c.new()
    got = []

    async def slow(msg):
        await asyncio.sleep(0.001)
        got.append(msg.data)

    sub = await nc.subscribe("conf.drain", cb=slow)
    await sync(nc)
    for i in range(100):
        await pub.publish("conf.drain", str(i).encode())
    await sync(pub)
    await sync(nc)  # all 100 are now in the client's pending queue or handled
    await sub.drain()
    deadline = time.monotonic() + 3
    while len(got) < 100 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    check(got == [str(i).encode() for i in range(100)], f"drained sub handled {len(got)} of 100")
    check(nc.stats["in_msgs"] == 100, f"server delivered {nc.stats['in_msgs']} messages, want 100")
    # After the drain the subscription is gone on the server.
    await sync(nc)
    await pub.publish("conf.drain", b"late")
    await sync(pub)
    await sync(nc)
    check(nc.stats["in_msgs"] == 100, "server delivered a message after the subscription was drained")
    check(len(got) == 100, "message handled after subscription drain")

    # Whole-connection drain.
    closed = asyncio.Event()

    async def on_closed():
        closed.set()

    nc2 = await c.new(closed_cb=on_closed)
    got2 = []

    async def cb2(msg):
        got2.append(msg.data)

    await nc2.subscribe("conf.drain2", cb=cb2)
    await sync(nc2)
    for i in range(50):
        await pub.publish("conf.drain2", str(i).encode())
    await sync(pub)
    await sync(nc2)
    await nc2.drain()
    await asyncio.wait_for(closed.wait(), 3)
    check(nc2.is_closed, "connection not closed after drain")
    check(nc2.last_error is None, f"drain ended with error {nc2.last_error!r}")
    check(len(got2) == 50, f"connection drain handled {len(got2)} of 50 "
          f"(client in_msgs {nc2.stats['in_msgs']}, publisher out_msgs {pub.stats['out_msgs']})")


CASES = [
    ("connect_info", case_connect_info),
    ("pubsub_literal", case_pubsub_literal),
    ("wildcards", case_wildcards),
    ("queue_group", case_queue_group),
    ("request_reply", case_request_reply),
    ("headers", case_headers),
    ("no_responders", case_no_responders),
    ("echo_off", case_echo_off),
    ("auto_unsubscribe", case_auto_unsubscribe),
    ("large_payload", case_large_payload),
    ("flush_ping", case_flush_ping),
    ("drain", case_drain),
]


async def main():
    if "--list" in sys.argv:
        for name, _ in CASES:
            print(name)
        return True
    only = set(os.environ.get("CASES", "").split(",")) - {""}
    passed = failed = 0
    for name, fn in CASES:
        if only and name not in only:
            continue
        c = Conns()
        try:
            await asyncio.wait_for(fn(c), CASE_TIMEOUT)
            print(f"ok {name}", flush=True)
            passed += 1
        except asyncio.TimeoutError:
            print(f"FAIL {name}: timed out after {CASE_TIMEOUT}s", flush=True)
            failed += 1
        except CaseFailure as e:
            print(f"FAIL {name}: {e}", flush=True)
            failed += 1
        except Exception as e:  # unexpected client error
            why = f"{type(e).__name__}: {e}"
            if os.environ.get("VERBOSE"):
                traceback.print_exc()
            print(f"FAIL {name}: {why}", flush=True)
            failed += 1
        finally:
            await c.close()
    print(f"{passed} passed, {failed} failed", flush=True)
    return failed == 0


if __name__ == "__main__":
    ok = asyncio.run(main())
    sys.exit(0 if ok else 1)
