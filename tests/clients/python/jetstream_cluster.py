"""JetStream through a cluster: nats-py connected to a server without JetStream (natsring, or
nats-server for the reference run) whose cluster has JetStream servers. Creates a stream,
publishes with acks, consumes with a durable pull consumer and a push (ordered) consumer,
checks every subject, payload and sequence, and prints "ok". Usage: jetstream_cluster.py URL"""

import asyncio
import sys

import nats


async def main(url):
    nc = await nats.connect(url, connect_timeout=5)
    js = nc.jetstream(timeout=5)
    # The JetStream servers elect a meta leader after they meet: retry until the API answers.
    for attempt in range(150):
        try:
            await js.account_info()
            break
        except Exception as err:  # no responders, timeout, "JetStream not ready"
            last = err
            await asyncio.sleep(0.2)
    else:
        raise SystemExit(f"no JetStream: {last!r}")
    stream = await js.add_stream(name="S1", subjects=["s1.>"])
    assert stream.config.name == "S1", stream
    for i in range(3):
        ack = await js.publish("s1.x", f"m{i}".encode())
        assert (ack.stream, ack.seq) == ("S1", i + 1), ack
    pull = await js.pull_subscribe("s1.>", durable="d1")
    messages = await pull.fetch(3, timeout=5)
    assert [m.data for m in messages] == [b"m0", b"m1", b"m2"], messages
    assert all(m.subject == "s1.x" for m in messages), [m.subject for m in messages]
    assert [m.metadata.sequence.stream for m in messages] == [1, 2, 3]
    for m in messages:
        await m.ack()
    push = await js.subscribe("s1.>", ordered_consumer=True)
    pushed = [await push.next_msg(timeout=5) for _ in range(3)]
    assert [m.data for m in pushed] == [b"m0", b"m1", b"m2"], pushed
    assert all(m.subject == "s1.x" for m in pushed), [m.subject for m in pushed]
    info = await js.stream_info("S1")
    assert info.state.messages == 3, info.state
    consumer = await js.consumer_info("S1", "d1")
    assert consumer.num_ack_pending == 0, consumer
    await nc.close()
    print("ok")


asyncio.run(main(sys.argv[1]))
