#!/usr/bin/env python3
"""Soak load for a running NATS server: steady traffic checked message by message, plus
connection churn, while the server's RSS and open descriptors are sampled. Run by
scripts/soak.sh (which builds and starts natsring); Python standard library only, raw sockets.

    soak.py --port PORT --pid SERVER_PID --minutes M [--shards 2] [--rate 200] [--churners 8]

Load, all on 127.0.0.1:
- publishers (2 per shard): each publishes `soak.p<i>.data` at --rate messages/s, payload
  `p<i>:<seq>:` padded to 64 bytes, seq from 1 without gaps;
- healthy subscribers, one connection per role on each shard (placed by the client_id in
  INFO, as natsring assigns shards):
    exact  SUB soak.p<i>.data for every publisher   -> every message once, in order
    star   SUB soak.*.data                          -> every message once, in order
    rest   SUB soak.>                               -> every message once, in order
    queue  SUB soak.*.data workers (2 per shard)    -> every message exactly once across the
                                                       group, in order within each member
- churners (--churners at a time): connect, CONNECT, subscribe (soak.>, churn.>, a queue group
  of their own, so they never take messages from the healthy group), publish to churn.<n>,
  then leave in one of several ways: UNSUB and a clean close; an abrupt close with RST
  (SO_LINGER 0) with messages still unread; half a PUB then RST or FIN; a protocol error
  (the server closes); or RST before reading INFO.

Sampled every second: VmRSS from /proc/PID/status and the entries of /proc/PID/fd.

Checks at the end (any failure: exit status 1):
- no message lost, duplicated or out of order on any healthy subscriber;
- descriptors: after the churners have closed, the server's fd count returns to the
  baseline taken before churn started (within 10 s);
- RSS flat: after a warm-up (the first 20% of the run), the median of the last quarter of the
  samples is within 10% (or 4 MiB, whichever is larger) of the median of the first quarter.
  Why 10%: the churn reaches its peak of concurrent connections within seconds, so the slab,
  buffers and allocator caches are at their high-water mark before the warm-up ends; what
  remains is allocator noise (mimalloc keeps and reuses freed pages, a few MiB at most). A leak
  of only 1 KiB per churned connection (about 130 connections/s with 8 churners) grows RSS by
  ~7.5 MiB per minute, so a 10-minute soak (8 minutes after warm-up) exceeds the bound many
  times over; the 4 MiB floor keeps short runs on a small RSS (about 17 MiB under this load)
  from failing on page-level noise. Measured: 1-minute runs stay within 0.2 MiB.

Prints one summary line; the per-check details go to stderr.
"""

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import struct
import sys
import time

HOST = "127.0.0.1"
PAYLOAD_BYTES = 64
CONNECT = (
    b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1,'
    b'"name":"soak","lang":"python","version":"0"}\r\n'
)
WARM_UP_FRACTION = 0.2
RSS_TOLERANCE_FRACTION = 0.10
RSS_TOLERANCE_FLOOR_BYTES = 4 * 1024 * 1024
FD_SETTLE_SECONDS = 10
DRAIN_SECONDS = 15


def shard_of(client_id, shards):
    return (client_id - 1) % shards


class Conn:
    """One client connection: reads INFO, answers server PINGs, hands MSGs to `on_msg`."""

    def __init__(self, reader, writer, info):
        self.reader = reader
        self.writer = writer
        self.info = info
        self.pongs = asyncio.Queue()
        self.on_msg = None
        self.errors = []

    @classmethod
    async def open(cls):
        reader, writer = await asyncio.open_connection(HOST, ARGS.port)
        line = await reader.readuntil(b"\r\n")
        if not line.startswith(b"INFO "):
            raise RuntimeError(f"expected INFO, got {line!r}")
        info = json.loads(line[5:].strip())
        writer.write(CONNECT)
        return cls(reader, writer, info)

    @property
    def shard(self):
        return shard_of(self.info["client_id"], ARGS.shards)

    async def read_loop(self):
        """Reads until EOF: MSG -> on_msg(subject, sid, payload), PING -> PONG."""
        reader = self.reader
        while True:
            try:
                line = await reader.readuntil(b"\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if line.startswith(b"MSG "):
                fields = line[4:-2].split(b" ")
                size = int(fields[-1])
                body = await reader.readexactly(size + 2)
                if self.on_msg:
                    self.on_msg(fields[0], fields[1], body[:-2])
            elif line.startswith(b"HMSG "):
                fields = line[5:-2].split(b" ")
                body = await reader.readexactly(int(fields[-1]) + 2)
                self.errors.append(f"unexpected HMSG {line!r}")
            elif line == b"PING\r\n":
                self.writer.write(b"PONG\r\n")
            elif line == b"PONG\r\n":
                self.pongs.put_nowait(time.monotonic())
            elif line == b"+OK\r\n" or line.startswith(b"INFO "):
                pass  # INFO: the async one answering a protocol-1 client's first PING
            else:
                self.errors.append(f"unexpected {line!r}")

    async def flush(self, timeout=10):
        self.writer.write(b"PING\r\n")
        await self.writer.drain()
        await asyncio.wait_for(self.pongs.get(), timeout)


async def open_on_shard(shard):
    """A connection on `shard` (other connections made on the way are closed cleanly)."""
    for _ in range(200):
        conn = await Conn.open()
        if conn.shard == shard:
            return conn
        conn.writer.close()
    raise RuntimeError(f"no connection landed on shard {shard} in 200 tries")


class Tracker:
    """Per healthy subscription: next expected seq per publisher, and what went wrong."""

    def __init__(self, name, group=None):
        self.name = name
        self.group = group  # a shared dict publisher -> set(seq) for queue members
        self.last = {}
        self.fresh = {}  # publisher -> messages with a seq above every one before it
        self.received = 0
        self.duplicated = 0
        self.out_of_order = 0
        self.problems = []

    def on_msg(self, subject, sid, payload):
        publisher, seq, _ = payload.split(b":", 2)
        publisher = int(publisher[1:])
        seq = int(seq)
        if subject != b"soak.p%d.data" % publisher:
            self.problems.append(f"{self.name}: payload of p{publisher} on {subject!r}")
        self.received += 1
        last = self.last.get(publisher, 0)
        if seq > last:
            self.fresh[publisher] = self.fresh.get(publisher, 0) + 1
        if self.group is None:
            if seq != last + 1:
                if seq <= last:
                    self.duplicated += 1
                else:
                    self.out_of_order += 1
                if len(self.problems) < 5:
                    self.problems.append(f"{self.name}: p{publisher} seq {seq} after {last}")
        else:
            seen = self.group.setdefault(publisher, set())
            if seq in seen:
                self.duplicated += 1
            seen.add(seq)
            if seq <= last:
                self.out_of_order += 1
                if len(self.problems) < 5:
                    self.problems.append(f"{self.name}: p{publisher} seq {seq} after {last}")
        self.last[publisher] = max(last, seq)


class Stats:
    published = 0
    churned = 0
    churned_rst = 0
    churn_errors = 0


async def publisher(index, conn, stop):
    """Publishes at ARGS.rate until `stop`, then flushes; returns the last seq."""
    seq = 0
    subject = b"soak.p%d.data" % index
    interval = 0.01
    per_tick = ARGS.rate * interval
    owed = 0.0
    next_tick = time.monotonic()
    while not stop.is_set():
        owed += per_tick
        frames = []
        while owed >= 1:
            seq += 1
            owed -= 1
            head = b"p%d:%d:" % (index, seq)
            payload = head + b"x" * (PAYLOAD_BYTES - len(head))
            frames.append(b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload))
        if frames:
            conn.writer.write(b"".join(frames))
            await conn.writer.drain()
        next_tick += interval
        await asyncio.sleep(max(0, next_tick - time.monotonic()))
    await conn.flush()
    return seq


def rst_close(writer):
    sock = writer.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


async def churn_once(number):
    """One churning connection, start to end."""
    way = random.choice(["clean", "rst", "rst", "partial_rst", "partial_fin", "error", "early_rst"])
    if way == "early_rst":
        reader, writer = await asyncio.open_connection(HOST, ARGS.port)
        rst_close(writer)
        Stats.churned += 1
        Stats.churned_rst += 1
        return
    conn = await Conn.open()
    reading = asyncio.ensure_future(conn.read_loop())
    try:
        w = conn.writer
        w.write(
            b"SUB soak.> 1\r\nSUB churn.> 2\r\nSUB soak.*.data churners 3\r\n"
            b"SUB churn.%d.* churners 4\r\n" % number
        )
        for k in range(random.randint(1, 20)):
            w.write(b"PUB churn.%d.%d 5\r\nhello\r\n" % (number, k))
        if way == "error":
            w.write(b"BOGUS\r\n")
            await w.drain()
            await asyncio.wait_for(reading, 5)  # the server closes
            w.close()
        elif way.startswith("partial"):
            w.write(b"PUB churn.%d 100\r\nhalf a payload" % number)
            await w.drain()
            await asyncio.sleep(random.random() * 0.05)
            if way == "partial_rst":
                rst_close(w)
            else:
                w.close()
        else:
            await conn.flush()
            await asyncio.sleep(random.random() * 0.2)
            if way == "clean":
                w.write(b"UNSUB 1\r\nUNSUB 2\r\nUNSUB 3\r\nUNSUB 4\r\n")
                await conn.flush()
                w.close()
            else:
                rst_close(w)
        Stats.churned += 1
        if "rst" in way:
            Stats.churned_rst += 1
    finally:
        reading.cancel()


async def churner(index, stop):
    number = index * 1_000_000
    while not stop.is_set():
        number += 1
        try:
            await churn_once(number)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, RuntimeError) as error:
            Stats.churn_errors += 1
            if Stats.churn_errors <= 5:
                print(f"soak: churner {index}: {error!r}", file=sys.stderr)
        await asyncio.sleep(random.random() * 0.02)


def sample(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def mib(n):
    return f"{n / 1048576:.1f}MiB"


async def main():
    duration = ARGS.minutes * 60
    failures = []

    # Healthy subscribers and publishers, one of each role per shard.
    group = {}
    trackers = []
    subscribers = []
    for shard in range(ARGS.shards):
        roles = [("exact", None), ("star", None), ("rest", None), ("queue", group), ("queue", group)]
        for role, shared in roles:
            conn = await open_on_shard(shard)
            tracker = Tracker(f"{role}@shard{shard}#{len(trackers)}", shared)
            conn.on_msg = tracker.on_msg
            if role == "exact":
                for p in range(ARGS.shards * 2):
                    conn.writer.write(b"SUB soak.p%d.data %d\r\n" % (p, p + 1))
            elif role == "star":
                conn.writer.write(b"SUB soak.*.data 1\r\n")
            elif role == "rest":
                conn.writer.write(b"SUB soak.> 1\r\n")
            else:
                conn.writer.write(b"SUB soak.*.data workers 1\r\n")
            trackers.append(tracker)
            subscribers.append(conn)
    publishers = [await open_on_shard(i % ARGS.shards) for i in range(ARGS.shards * 2)]
    readers = [asyncio.ensure_future(c.read_loop()) for c in subscribers + publishers]
    for conn in subscribers + publishers:
        await conn.flush()  # after the PONG, a SUB sees publishes from every shard

    await asyncio.sleep(1)
    rss, fd_baseline = sample(ARGS.pid)
    print(f"soak: {len(subscribers)} subscribers, {len(publishers)} publishers at "
          f"{ARGS.rate}/s each, {ARGS.churners} churners; fd baseline {fd_baseline}, "
          f"RSS {mib(rss)}", file=sys.stderr)

    stop_publishing = asyncio.Event()
    stop_churning = asyncio.Event()
    pub_tasks = [asyncio.ensure_future(publisher(i, c, stop_publishing))
                 for i, c in enumerate(publishers)]
    churn_tasks = [asyncio.ensure_future(churner(i, stop_churning)) for i in range(ARGS.churners)]

    samples = []  # (seconds since start, rss, fds)
    start = time.monotonic()
    next_report = 30
    while (elapsed := time.monotonic() - start) < duration:
        rss, fds = sample(ARGS.pid)
        samples.append((elapsed, rss, fds))
        if elapsed >= next_report:
            print(f"soak: {elapsed:.0f}s churned {Stats.churned}, RSS {mib(rss)}, fds {fds}",
                  file=sys.stderr)
            next_report += 30
        await asyncio.sleep(1)

    stop_churning.set()
    await asyncio.gather(*churn_tasks)
    stop_publishing.set()
    last_seqs = await asyncio.gather(*pub_tasks)
    Stats.published = sum(last_seqs)

    # Wait for every healthy subscriber to have everything (or time out).
    deadline = time.monotonic() + DRAIN_SECONDS
    want_each = Stats.published
    queue_members = [t for t in trackers if t.group is not None]
    plain = [t for t in trackers if t.group is None]
    while time.monotonic() < deadline:
        done = all(t.received >= want_each for t in plain) and \
            sum(t.received for t in queue_members) >= want_each
        if done:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # anything extra (duplicates) would arrive now

    expected = want_each * len(plain) + want_each
    delivered = sum(t.received for t in trackers)
    lost = 0
    for t in plain:
        for p, seq in enumerate(last_seqs):
            lost += seq - t.fresh.get(p, 0)
    for p, seq in enumerate(last_seqs):
        lost += seq - len(group.get(p, set()) & set(range(1, seq + 1)))
    duplicated = sum(t.duplicated for t in trackers)
    out_of_order = sum(t.out_of_order for t in trackers)
    if lost or duplicated or out_of_order or delivered != expected:
        failures.append(f"messages: lost {lost}, duplicated {duplicated}, out of order "
                        f"{out_of_order}, delivered {delivered} of {expected}")
        for t in trackers:
            for problem in t.problems:
                print(f"soak:   {problem}", file=sys.stderr)
    for conn in subscribers + publishers:
        for error in conn.errors[:5]:
            failures.append(f"healthy connection: {error}")
    if Stats.churned == 0:
        failures.append("no connection churned")

    # Descriptors back to the baseline once the churners are gone.
    deadline = time.monotonic() + FD_SETTLE_SECONDS
    while True:
        rss, fd_end = sample(ARGS.pid)
        if fd_end == fd_baseline or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    if fd_end != fd_baseline:
        failures.append(f"fds: {fd_end} at the end, baseline {fd_baseline}")

    # RSS flat after the warm-up.
    steady = [s for s in samples if s[0] >= duration * WARM_UP_FRACTION]
    quarter = max(1, len(steady) // 4)
    first = statistics.median(s[1] for s in steady[:quarter])
    last = statistics.median(s[1] for s in steady[-quarter:])
    allowed = max(first * RSS_TOLERANCE_FRACTION, RSS_TOLERANCE_FLOOR_BYTES)
    if last - first > allowed:
        failures.append(f"RSS grew: last-quarter median {mib(last)} vs first-quarter "
                        f"{mib(first)} (allowed +{mib(allowed)})")
    rss_max = max(s[1] for s in samples)
    fd_max = max(s[2] for s in samples)

    for conn in subscribers + publishers:
        conn.writer.close()
    for task in readers:
        task.cancel()

    for failure in failures:
        print(f"soak: FAIL {failure}", file=sys.stderr)
    verdict = "FAIL" if failures else "PASS"
    print(f"soak {verdict}: {ARGS.minutes:g} min, published {Stats.published}, delivered "
          f"{delivered} (expected {expected}), lost {lost}, duplicated {duplicated}, "
          f"out of order {out_of_order}, churned {Stats.churned} connections "
          f"({Stats.churned_rst} RST, {Stats.churn_errors} client errors), fds baseline "
          f"{fd_baseline} max {fd_max} end {fd_end}, RSS start {mib(steady[0][1])} "
          f"end {mib(samples[-1][1])} max {mib(rss_max)} (steady medians {mib(first)} -> "
          f"{mib(last)})")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--rate", type=int, default=200, help="messages/s per publisher")
    parser.add_argument("--churners", type=int, default=8)
    ARGS = parser.parse_args()
    sys.exit(asyncio.run(main()))
