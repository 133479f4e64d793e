//! Waiting until subscriptions made on one server are known to another (`pubsub
//! --sub-server`: publishers on node A of a cluster, subscribers on node B).
//!
//! A subscription reaches the other nodes as an `RS+` over the route, after its SUB has been
//! answered: nats-server promises nothing about when, and a message published on A before A
//! knows of it is dropped without a trace. So before the clock starts:
//!
//! 1. each subscriber, already holding the run's subscription, subscribes to a probe subject
//!    (`<subject>.probe`) on the same connection, after it: a server processes one
//!    connection's SUBs in order and sends their `RS+` over the same route in that order
//!    (nats-server's route pool keeps an account on one connection), so once A knows the
//!    probe's interest it knows the run's;
//! 2. a publisher publishes an empty probe every `PROBE_INTERVAL_MS` until every subscriber
//!    has received one (at most `wait_max`);
//! 3. each subscriber unsubscribes the probe and PINGs; probes still on their way arrive
//!    before the PONG (or after the UNSUB, where nothing delivers them) and are discarded.
//!
//! From then on the run's counts are exact: a message lost or duplicated fails the run, as
//! on one server. Must not touch the run's subject: a probe on it would be counted.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::wire::{Client, MsgCounter};

/// How long a subscriber waits for a probe before another is published.
const PROBE_INTERVAL_MS: u64 = 5;
/// The probe subscriptions' sids: above any run subscription's (1..=subscribers).
const PROBE_SID_BASE: usize = 1_000_000;

/// Returns once every one of `subscribers` (connected to another server than `publisher`,
/// each subscribed to `subject`) receives what `publisher` publishes; an error after
/// `wait_max` without. Leaves no probe subscription and no unread probe behind, and the
/// subscribers' read timeouts at `PROBE_INTERVAL_MS` (the caller sets its own).
pub fn await_route(
    publisher: &mut Client,
    subscribers: &mut [&mut Client],
    subject: &str,
    wait_max: Duration,
) -> io::Result<()> {
    let probe_subject = format!("{subject}.probe");
    let mut counters = Vec::with_capacity(subscribers.len());
    for (index, client) in subscribers.iter_mut().enumerate() {
        let sid = PROBE_SID_BASE + index;
        client
            .stream
            .write_all(format!("SUB {probe_subject} {sid}\r\nPING\r\n").as_bytes())?;
        client.wait_pong()?;
        client
            .stream
            .set_read_timeout(Some(Duration::from_millis(PROBE_INTERVAL_MS)))?;
        let mut counter = MsgCounter::new(&probe_subject, &sid.to_string(), 0);
        counter.prime(&std::mem::take(&mut client.leftover));
        counters.push(counter);
    }

    let probe = format!("PUB {probe_subject} 0\r\n\r\n");
    let started = Instant::now();
    let mut probes = 0u64;
    let mut reached = vec![false; subscribers.len()];
    while reached.contains(&false) {
        if started.elapsed() > wait_max {
            let missing = reached.iter().filter(|&&done| !done).count();
            return Err(io::Error::other(format!(
                "interest did not cross the route: {missing} of {} subscribers got none of \
                 {probes} probes in {wait_max:?}",
                subscribers.len()
            )));
        }
        publisher.stream.write_all(probe.as_bytes())?;
        probes += 1;
        for ((client, counter), done) in subscribers.iter_mut().zip(&mut counters).zip(&mut reached)
        {
            if *done {
                continue;
            }
            let Some(counted) = counter.read_and_count(&mut client.stream)? else {
                return Err(io::Error::other(
                    "server closed a subscriber during the probes",
                ));
            };
            *done = counted.messages > 0;
        }
    }

    for (index, (client, mut counter)) in subscribers.iter_mut().zip(counters).enumerate() {
        let sid = PROBE_SID_BASE + index;
        client
            .stream
            .write_all(format!("UNSUB {sid}\r\nPING\r\n").as_bytes())?;
        let asked = Instant::now();
        loop {
            let Some(counted) = counter.read_and_count(&mut client.stream)? else {
                return Err(io::Error::other(
                    "server closed a subscriber after the probes",
                ));
            };
            if counted.pongs > 0 {
                break;
            }
            if asked.elapsed() > wait_max {
                return Err(io::Error::other("no PONG after the probe's UNSUB"));
            }
        }
        client.leftover = counter.into_unread();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::thread;

    use crate::wire::Target;

    /// The subscriber's side of a fake two-node cluster: its probe subscription (sid), and
    /// its connection, to which published probes are forwarded.
    #[derive(Default)]
    struct Node {
        probe_sid: Option<String>,
        subscriber: Option<TcpStream>,
        probes_published: u64,
    }

    /// A fake server on one port for both nodes: the first connection is the subscriber's
    /// (node B), the second the publisher's (node A). A's probes reach B's subscriber from
    /// the `interest_after`-th on (interest crossing the route late), and keep coming while
    /// the subscriber reads, so some are in flight when it unsubscribes.
    fn fake_cluster(interest_after: u64) -> (String, Arc<Mutex<Node>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let node = Arc::new(Mutex::new(Node::default()));
        let shared = Arc::clone(&node);
        thread::spawn(move || {
            for (index, stream) in listener.incoming().take(2).enumerate() {
                let stream = stream.unwrap();
                if index == 0 {
                    shared.lock().unwrap().subscriber = Some(stream.try_clone().unwrap());
                }
                let node = Arc::clone(&shared);
                thread::spawn(move || serve(stream, &node, interest_after));
            }
        });
        (address, node)
    }

    fn serve(mut stream: TcpStream, node: &Mutex<Node>, interest_after: u64) {
        stream.write_all(b"INFO {\"client_id\":1}\r\n").unwrap();
        let mut lines = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while lines.read_line(&mut line).unwrap_or(0) > 0 {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mut node = node.lock().unwrap();
            match words.as_slice() {
                ["PING"] => stream.write_all(b"PONG\r\n").unwrap(),
                ["SUB", subject, sid] if subject.ends_with(".probe") => {
                    node.probe_sid = Some(sid.to_string())
                }
                ["UNSUB", _] => node.probe_sid = None,
                ["PUB", subject, "0"] => {
                    node.probes_published += 1;
                    if let (Some(sid), true) =
                        (&node.probe_sid, node.probes_published >= interest_after)
                    {
                        let frame = format!("MSG {subject} {sid} 0\r\n\r\n");
                        let subscriber = node.subscriber.as_mut().unwrap();
                        subscriber.write_all(frame.as_bytes()).unwrap();
                    }
                }
                _ => {}
            }
            line.clear();
        }
    }

    fn connect(address: &str) -> Client {
        let target = Target {
            address: address.to_string(),
            shard_count: None,
            credentials: None,
            tls: None,
        };
        Client::connect(&target, None).unwrap()
    }

    #[test]
    fn waits_for_a_probe_and_leaves_none_behind() {
        let (address, node) = fake_cluster(3);
        let mut subscriber = connect(&address);
        let mut publisher = connect(&address);
        await_route(&mut publisher, &mut [&mut subscriber], "bench", WAIT).unwrap();
        assert!(node.lock().unwrap().probes_published >= 3);
        assert!(
            node.lock().unwrap().probe_sid.is_none(),
            "the probe is unsubscribed"
        );
        // Nothing of the probes is left: the next thing the subscriber reads is a PONG.
        assert!(subscriber.leftover.is_empty());
        subscriber.stream.set_read_timeout(Some(WAIT)).unwrap();
        subscriber.round_trip().unwrap();
    }

    #[test]
    fn fails_when_interest_never_arrives() {
        let (address, _node) = fake_cluster(u64::MAX);
        let mut subscriber = connect(&address);
        let mut publisher = connect(&address);
        let err = await_route(
            &mut publisher,
            &mut [&mut subscriber],
            "bench",
            Duration::from_millis(100),
        )
        .unwrap_err();
        assert!(err.to_string().contains("did not cross the route"), "{err}");
    }

    const WAIT: Duration = Duration::from_secs(10);
}
