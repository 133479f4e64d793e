#!/usr/bin/env python3
"""Credentials with the official Python client (nats-py), run by tests/auth_clients.rs.

Usage: auth_creds.py <operator-mode url> <creds file> <untrusted creds file>
                     <password url> <user> <password>

Against the server in operator mode: connects with user_credentials=<creds file> (nats-py
signs the nonce with the file's seed and sends its JWT), and checks a publish/subscribe round
trip and a request/reply with a second connection of the same user; a connection with the
<untrusted creds file> (a user of an account the server does not trust) must be refused with
an authorization error. Against the other server: the same with <user> and <password>, and
the wrong password refused. Exits 0 when all of that held; prints what failed otherwise.
"""

import asyncio
import sys

import nats
import nats.errors

TIMEOUT = 10.0


async def connect(url, **credentials):
    return await nats.connect(
        servers=[url],
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=2,
        **credentials,
    )


async def round_trip(url, what, **credentials):
    """A subscriber and a requester with the same credentials: a message and a request."""
    subscriber = await connect(url, **credentials)
    publisher = await connect(url, **credentials)
    try:
        subject = "py.auth.roundtrip"
        sub = await subscriber.subscribe(subject)

        async def echo(msg):
            await msg.respond(b"echo " + msg.data)

        await subscriber.subscribe("py.auth.echo", cb=echo)
        # Twice: nats-py writes flush()'s PING straight to the socket, ahead of the SUBs still
        # waiting for its flusher task, so the first PONG may come before the server has them.
        # The flusher has written them by the time that PONG is read; the second PING follows.
        await subscriber.flush()
        await subscriber.flush()
        await publisher.publish(subject, what.encode())
        try:
            msg = await sub.next_msg(timeout=TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"{what}: the published message did not arrive") from None
        assert msg.data == what.encode(), f"{what}: round trip got {msg.data!r}"
        try:
            reply = await publisher.request("py.auth.echo", b"hi", timeout=TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"{what}: no reply to the request") from None
        assert reply.data == b"echo hi", f"{what}: request got {reply.data!r}"
    finally:
        await publisher.close()
        await subscriber.close()


async def refused(url, what, **credentials):
    """The connection must fail, with nats-py telling of an authorization failure."""
    errors = []

    async def error_cb(error):
        errors.append(error)

    try:
        nc = await connect(url, error_cb=error_cb, **credentials)
    except Exception as error:  # nats-py raises what the server's -ERR became
        errors.append(error)
    else:
        await nc.close()
        raise AssertionError(f"{what}: connected, expected a refusal")
    authorization = [
        error
        for error in errors
        if isinstance(error, nats.errors.AuthorizationError)
        or "authorization violation" in str(error).lower()
    ]
    assert authorization, f"{what}: refused without an authorization error: {errors!r}"


async def main(operator_url, creds, untrusted_creds, password_url, user, password):
    await round_trip(operator_url, "creds", user_credentials=creds)
    await refused(operator_url, "untrusted creds", user_credentials=untrusted_creds)
    await round_trip(password_url, "password", user=user, password=password)
    await refused(password_url, "wrong password", user=user, password=password + "x")


if __name__ == "__main__":
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    try:
        asyncio.run(main(*sys.argv[1:]))
    except Exception as error:  # any failure, with what it was
        print(f"FAIL: {error!r}")
        sys.exit(1)
    print("ok credentials and passwords (nats-py)")
