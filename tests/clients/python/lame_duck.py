#!/usr/bin/env python3
"""Lame duck mode with the official Python client (nats-py), run by tests/config.rs.

Usage: lame_duck.py <leaving server url> <staying server url> <leaving server pid>

Connects to the leaving server first (servers in order, no randomizing), subscribes, sends
the leaving server SIGUSR2 itself, and checks that: the client is told (nats-py's lame duck
callback, from the INFO with "ldm":true), it reconnects to the staying server when the
leaving one closes it, its subscription works there, and no call of the application failed.
nats-py hands its error callback an UnexpectedEOF when a server closes the connection, with
nats-server as with natsring (tests/config.rs runs this script against both); any other error
fails the check. Exits 0 when all of that held; prints what failed otherwise.
"""

import asyncio
import os
import signal
import sys

import nats

TIMEOUT = 15.0


async def main(leaving, staying, pid):
    errors = []
    lame_duck = asyncio.Event()
    reconnected = asyncio.Event()

    async def error_cb(error):
        errors.append(repr(error))

    async def lame_duck_cb():
        lame_duck.set()

    async def reconnected_cb():
        reconnected.set()

    nc = await nats.connect(
        servers=[leaving, staying],
        dont_randomize=True,
        error_cb=error_cb,
        lame_duck_mode_cb=lame_duck_cb,
        reconnected_cb=reconnected_cb,
        reconnect_time_wait=0.1,
        max_reconnect_attempts=20,
        connect_timeout=2,
    )
    try:
        assert nc.connected_url.geturl() == leaving, f"connected to {nc.connected_url.geturl()}"
        received = []
        got = asyncio.Event()

        async def handler(msg):
            received.append(msg.data)
            got.set()

        await nc.subscribe("ldm.py", cb=handler)
        await nc.flush()
        await nc.publish("ldm.py", b"before")
        await asyncio.wait_for(got.wait(), TIMEOUT)
        got.clear()

        os.kill(pid, signal.SIGUSR2)
        await asyncio.wait_for(lame_duck.wait(), TIMEOUT)
        await asyncio.wait_for(reconnected.wait(), TIMEOUT)
        assert nc.connected_url.geturl() == staying, f"reconnected to {nc.connected_url.geturl()}"
        await nc.flush()
        await nc.publish("ldm.py", b"after")
        await asyncio.wait_for(got.wait(), TIMEOUT)
        assert received == [b"before", b"after"], received
        unexpected = [error for error in errors if error != "UnexpectedEOF()"]
        assert not unexpected, f"errors surfaced to the application: {errors}"
    finally:
        await nc.close()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    except Exception as error:  # any failure, with what it was
        print(f"FAIL: {error!r}")
        sys.exit(1)
    print("ok lame duck (nats-py)")
