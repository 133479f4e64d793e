#!/usr/bin/env python3
"""TLS with the official Python client (nats-py), run by tests/tls.rs against nats-server and
natsring.

Usage: tls.py <url> <ca file> [--cert <client cert> --key <client key>] [--handshake-first]

Connects with an ssl.SSLContext that trusts <ca file> (and presents the client certificate
when given; with --handshake-first, tls_handshake_first=True: the TLS handshake before the
server's INFO), then checks over two connections: 2,000 messages of 1 KiB and 20 of 100 KiB
arrive exactly, intact and in order, and 100 requests get their replies. Exits 0 when all of
that held; prints what failed otherwise.
"""

import argparse
import asyncio
import ssl
import sys

import nats

TIMEOUT = 10.0


def payload(index, size):
    head = b"%08d" % index
    return head + bytes(ord("a") + (index + j) % 26 for j in range(size - 8))


async def connect(args):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    return await nats.connect(
        servers=[args.url],
        tls=context,
        tls_handshake_first=args.handshake_first,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=TIMEOUT,
    )


async def exact_counts(subscriber, publisher, count, size):
    subject = f"py.tls.bulk.{size}"
    sub = await subscriber.subscribe(subject, pending_msgs_limit=count + 1)
    # Twice: nats-py writes flush()'s PING straight to the socket, ahead of the SUB still
    # waiting for its flusher task, so the first PONG may come before the server has it.
    await subscriber.flush()
    await subscriber.flush()
    for i in range(count):
        await publisher.publish(subject, payload(i, size))
    await publisher.flush()
    for i in range(count):
        try:
            msg = await sub.next_msg(timeout=TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"{subject}: message {i} of {count} did not arrive") from None
        assert msg.data == payload(i, size), f"{subject}: message {i} differs"
    await subscriber.flush()
    try:
        extra = await sub.next_msg(timeout=0.1)
    except asyncio.TimeoutError:
        extra = None
    assert extra is None, f"{subject}: more than {count} messages"
    await sub.unsubscribe()


async def requests(subscriber, publisher, count):
    async def echo(msg):
        await msg.respond(b"echo " + msg.data)

    await subscriber.subscribe("py.tls.echo", cb=echo)
    await subscriber.flush()
    await subscriber.flush()
    for i in range(count):
        try:
            reply = await publisher.request("py.tls.echo", b"%d" % i, timeout=TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"no reply to request {i}") from None
        assert reply.data == b"echo %d" % i, f"request {i} got {reply.data!r}"


async def main(args):
    subscriber = await connect(args)
    publisher = await connect(args)
    try:
        await exact_counts(subscriber, publisher, 2000, 1024)
        await exact_counts(subscriber, publisher, 20, 100 * 1024)
        await requests(subscriber, publisher, 100)
    finally:
        await publisher.close()
        await subscriber.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--handshake-first", action="store_true")
    arguments = parser.parse_args()
    if bool(arguments.cert) != bool(arguments.key):
        sys.exit("--cert and --key go together")
    try:
        asyncio.run(main(arguments))
    except Exception as error:  # any failure, with what it was
        print(f"FAIL: {error!r}")
        sys.exit(1)
    mode = "handshake first" if arguments.handshake_first else "TLS after INFO"
    print(f"ok nats-py over TLS ({mode})")
