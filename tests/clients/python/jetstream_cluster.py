"""JetStream through a cluster: nats-py connected to a server without JetStream (natsring, or
nats-server for the reference run) whose cluster has JetStream servers. Creates a stream,
publishes with acks, consumes with a durable pull consumer and a push (ordered) consumer,
checks every subject, payload and sequence, and prints "ok". Usage: jetstream_cluster.py URL"""

import asyncio
import sys

import nats
import nats.js.errors


async def main(url):
    nc = await nats.connect(url, connect_timeout=5)
    js = nc.jetstream(timeout=2)
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
    # The stream's interest in `s1.>` reaches this server a moment after the stream is made
    # (nats-server's own nodes race the same way): a publish that finds no interest yet times
    # out, and is sent again with the same message id, which the stream deduplicates.
    for i in range(3):
        for attempt in range(50):
            try:
                ack = await js.publish("s1.x", f"m{i}".encode(), headers={"Nats-Msg-Id": f"m{i}"})
                break
            except (
                nats.errors.TimeoutError,
                nats.errors.NoRespondersError,
                nats.js.errors.NoStreamResponseError,
            ) as err:
                last = err
                await asyncio.sleep(0.2)
        else:
            raise SystemExit(f"no ack for m{i}: {last!r}")
        assert (ack.stream, ack.seq) == ("S1", i + 1), ack
    pull = await js.pull_subscribe("s1.>", durable="d1")
    # The same race for the consumer's interest in its next-message requests: a request that
    # went nowhere times out and the next one is served.
    messages = []
    for attempt in range(30):
        try:
            messages += await pull.fetch(3 - len(messages), timeout=1)
        except nats.errors.TimeoutError:
            pass
        if len(messages) == 3:
            break
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
