//! `req --auth-churn R`: one more thread opens R new connections a second, each a whole
//! authenticating handshake (INFO, then CONNECT with `--churn-user`/`--churn-pass` and PING,
//! then the PONG, or the server's `-ERR` or close), and closes it at once. What it costs the
//! other clients of the server (the requesters' latency) is the measurement; its own report
//! says how many authenticated, how fast, and how long each handshake took.
//!
//! The handshakes overlap: a bcrypt check costs milliseconds by design, and a server that
//! falls behind holds a handshake until its authentication timeout (seconds), so at 100 a
//! second hundreds may be in flight. The pacing thread opens each connection when it is due
//! and hands it to a short-lived thread of its own, which waits in a blocking read for the
//! server's answer and sends the outcome back: a waiting handshake costs the generator
//! nothing, and its time is exact. (Looking at every open handshake each millisecond from
//! the pacing thread instead took a fifth of the generator's CPU, beside the requester being
//! measured.) At most `IN_FLIGHT_MAX` are in flight: a server that falls behind gets its
//! connections later (the rate reached shows it), not more of them.
//!
//! The churn shares the generator's CPU with the requester being measured, and each of its
//! wake-ups (the pacing thread's, a handshake's answer, a thread started) would preempt the
//! requester or its responder: at 100 plain-password logins a second that alone doubled the
//! requester's p99 against natsring and nats-server alike (`scripts/auth_stall.py
//! --churn-plain`), a cost of the generator and not of the server. So its threads run under
//! `SCHED_IDLE` (`ChurnReport::idle_policy`): they take the CPU in the requester's gaps, while
//! it waits for the server, and never from it.
//!
//! `req --tls-churn R`: the same churn over TLS (`Tls`, the `--tls-ca` files), each
//! connection a full handshake (no resumption, `tls.rs`): INFO, the TLS handshake, then
//! CONNECT, PING and the PONG through it (with the server's `handshake_first`, `--tls-first`,
//! the TLS handshake comes before the INFO). The handshake's client side (a signature check,
//! a key exchange) runs in the connection's own `SCHED_IDLE` thread, as the waiting does. A
//! connection is closed by dropping it (a TCP close, no close_notify), as a client that exits
//! does. What the handshakes cost the other clients of the server is the measurement
//! (`scripts/tls_stall.py`); without credentials the server checks nothing but the TLS.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::Latency;
use crate::wire::{self, Credentials, Stream, Tls};

/// Handshakes in flight at most (each holds a socket and a thread, asleep in a read).
const IN_FLIGHT_MAX: usize = 1000;
/// Stack of a handshake's thread: it reads into a 4 KiB buffer and parses lines.
const HANDSHAKE_STACK_BYTES: usize = 64 * 1024;
/// How long the pacing thread waits at most before it looks at `stop` again.
const STOP_CHECK: Duration = Duration::from_millis(10);
/// Bytes one handshake may receive before its PONG (an INFO is well under 4 KiB; a server
/// that sends more is not answering the handshake).
const HANDSHAKE_INPUT_BYTES_MAX: usize = 64 * 1024;

/// What the churn did, in the run's JSON report (`auth_churn`).
#[derive(Debug, Default, Serialize)]
pub struct ChurnReport {
    /// Connections a second it was asked for (`--auth-churn`, `--tls-churn`).
    pub rate_target: f64,
    /// Whether its connections speak TLS (`--tls-churn`).
    pub tls: bool,
    /// Whether its threads run under `SCHED_IDLE` (see the module; false if the kernel
    /// refused).
    pub idle_policy: bool,
    /// Connections opened.
    pub opened: u64,
    /// Handshakes that ended with the PONG (the server took the connection: its
    /// credentials, if any, and its TLS handshake, if any).
    pub authenticated: u64,
    /// Handshakes the server refused (an `-ERR`, or a close before the PONG).
    pub refused: u64,
    /// Each refusal's text (the `-ERR` line, or "closed") and how often it came.
    pub refusals: BTreeMap<String, u64>,
    /// Handshakes with no answer within `--stall`.
    pub timed_out: u64,
    /// Connections that failed with an I/O error (the first one's text in `error`).
    pub failed: u64,
    pub error: Option<String>,
    /// Handshakes still waiting when the run ended.
    pub unfinished: u64,
    /// From the first connection due until the run ended.
    pub seconds: f64,
    /// Handshakes that authenticated, per second.
    pub authenticated_rate: f64,
    /// From `connect` until the PONG or the refusal, answered handshakes only.
    pub handshake_us: Latency,
}

impl ChurnReport {
    fn failure(&mut self, err: io::Error) {
        self.failed += 1;
        self.error.get_or_insert_with(|| err.to_string());
    }

    /// Counts a finished handshake.
    fn finished(&mut self, finished: Finished, histogram: &mut Histogram<u64>) {
        match finished.outcome {
            Ok(outcome) => {
                let nanos = finished.took.as_nanos() as u64;
                histogram.saturating_record(nanos.max(1));
                match outcome {
                    Outcome::Authenticated => self.authenticated += 1,
                    Outcome::Refused(text) => {
                        self.refused += 1;
                        *self.refusals.entry(text).or_default() += 1;
                    }
                }
            }
            Err(err) if is_timeout(&err) => self.timed_out += 1,
            Err(err) => self.failure(err),
        }
    }
}

/// Where a handshake is: exactly one of these while it is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Connected (and, with `handshake_first`, the TLS handshake done); the server's INFO
    /// has not been read whole yet.
    AwaitingInfo,
    /// CONNECT and PING sent; waiting for the PONG (or a refusal).
    AwaitingPong,
}

/// How a handshake ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Authenticated,
    /// The `-ERR` line (trimmed), or "closed".
    Refused(String),
}

/// A handshake's end and how long it took from `connect`.
struct Finished {
    /// An error that `is_timeout` is a handshake with no answer within the stall.
    outcome: io::Result<Outcome>,
    took: Duration,
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What a handshake's line handling asks its reader to do next.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Read more.
    Read,
    /// The INFO has come, and nothing after it: the TLS handshake (if any), then CONNECT and
    /// PING.
    Connect,
    Done(Outcome),
}

/// One handshake in flight.
struct Handshake {
    /// Plain until the TLS handshake (with `tls`), then TLS.
    stream: Stream,
    /// How the connection speaks TLS (`--tls-churn`); none: plain.
    tls: Option<Tls>,
    began: Instant,
    stage: Stage,
    /// Bytes received and not yet taken as a line.
    input: Vec<u8>,
}

impl Handshake {
    /// Connects; the server is given `stall` to answer the whole handshake.
    fn open(address: &str, tls: Option<&Tls>, stall: Duration) -> io::Result<Handshake> {
        let began = Instant::now();
        let socket = TcpStream::connect(address)?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(stall))?;
        Ok(Handshake {
            stream: Stream::Plain(socket),
            tls: tls.cloned(),
            began,
            stage: Stage::AwaitingInfo,
            input: Vec::with_capacity(4096),
        })
    }

    /// Reads until the handshake ends (blocking), then closes the connection.
    fn finish(self, connect: &[u8]) -> Finished {
        let began = self.began;
        let outcome = self.run(connect);
        Finished {
            outcome,
            took: began.elapsed(),
        }
    }

    fn run(mut self, connect: &[u8]) -> io::Result<Outcome> {
        if let Some(tls) = self.tls.as_ref().filter(|tls| tls.first) {
            self.stream = tls.handshake(self.stream.into_plain_socket())?;
        }
        let mut chunk = [0u8; 4096];
        loop {
            match self.take_lines()? {
                Step::Read => {}
                Step::Connect => {
                    if let Some(tls) = self.tls.as_ref().filter(|tls| !tls.first) {
                        // Plain bytes after the INFO would be read where TLS records go.
                        if !self.input.is_empty() {
                            return Err(io::Error::other(
                                "the server sent more than its INFO before the TLS handshake",
                            ));
                        }
                        self.stream = tls.handshake(self.stream.into_plain_socket())?;
                    }
                    self.stream.write_all(connect)?;
                    self.stage = Stage::AwaitingPong;
                    continue;
                }
                Step::Done(outcome) => return Ok(outcome),
            }
            if self.input.len() > HANDSHAKE_INPUT_BYTES_MAX {
                return Err(io::Error::other("no line in 64 KiB of handshake"));
            }
            match self.stream.read(&mut chunk) {
                // Whatever came before the close has been taken already.
                Ok(0) => return Ok(Outcome::Refused("closed".into())),
                Ok(read) => self.input.extend_from_slice(&chunk[..read]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // A reset right after an -ERR: the refusal was taken from an earlier read.
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(Outcome::Refused("closed".into()))
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Handles the whole lines received, up to the INFO or the end of the handshake.
    fn take_lines(&mut self) -> io::Result<Step> {
        let mut start = 0;
        let mut step = Step::Read;
        while let Some(end) = memchr::memchr(b'\n', &self.input[start..]) {
            let line = &self.input[start..start + end + 1];
            start += end + 1;
            if line.starts_with(b"-ERR") {
                let text = String::from_utf8_lossy(line).trim_end().to_string();
                step = Step::Done(Outcome::Refused(text));
                break;
            }
            match self.stage {
                Stage::AwaitingInfo if line.starts_with(b"INFO ") => {
                    step = Step::Connect;
                    break;
                }
                Stage::AwaitingPong if line.starts_with(b"PONG") => {
                    step = Step::Done(Outcome::Authenticated);
                    break;
                }
                Stage::AwaitingPong if line.starts_with(b"PING") => {
                    self.stream.write_all(b"PONG\r\n")?;
                }
                Stage::AwaitingPong if line.starts_with(b"+OK") || line.starts_with(b"INFO") => {}
                stage => {
                    return Err(io::Error::other(format!(
                        "{stage:?}: server sent {:?}",
                        String::from_utf8_lossy(line).trim_end()
                    )))
                }
            }
        }
        self.input.drain(..start);
        Ok(step)
    }
}

/// Opens `rate` connections a second to `address` with `credentials` (and over TLS with
/// `tls`) until `stop`; a handshake with no answer after `stall` is given up.
pub fn run(
    address: &str,
    credentials: Option<&Credentials>,
    tls: Option<&Tls>,
    rate: f64,
    stall: Duration,
    stop: &AtomicBool,
) -> ChurnReport {
    let connect: Arc<[u8]> = wire::connect_and_ping(credentials).into();
    // The handshake threads inherit the policy (glibc's threads inherit the creator's).
    let idle_policy = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        thread_priority::ThreadPriority::Min,
        thread_priority::ThreadSchedulePolicy::Normal(
            thread_priority::NormalThreadSchedulePolicy::Idle,
        ),
    )
    .is_ok();
    let mut report = ChurnReport {
        rate_target: rate,
        tls: tls.is_some(),
        idle_policy,
        ..ChurnReport::default()
    };
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    let (results, finished) = channel::<Finished>();
    let mut in_flight = 0usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // The next connection is due at start + opened * interval; one that falls behind
        // (in flight at the most) is opened as soon as a handshake ends.
        let due = start + interval.mul_f64(report.opened as f64);
        let now = Instant::now();
        if now >= due && in_flight < IN_FLIGHT_MAX {
            report.opened += 1;
            match open(address, tls, stall, &connect, &results) {
                Ok(()) => in_flight += 1,
                Err(err) => report.failure(err),
            }
            continue;
        }
        let wait = if in_flight < IN_FLIGHT_MAX {
            due.saturating_duration_since(now).min(STOP_CHECK)
        } else {
            STOP_CHECK
        };
        match finished.recv_timeout(wait) {
            Ok(done) => {
                in_flight -= 1;
                report.finished(done, &mut histogram);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => unreachable!("the sender is held here"),
        }
    }
    // Those that ended meanwhile are counted; the rest end on their own (answer or stall).
    while let Ok(done) = finished.try_recv() {
        in_flight -= 1;
        report.finished(done, &mut histogram);
    }
    report.unfinished = in_flight as u64;
    report.seconds = start.elapsed().as_secs_f64();
    report.authenticated_rate = report.authenticated as f64 / report.seconds;
    report.handshake_us = Latency::of(&histogram);
    report
}

/// Opens one connection and starts the thread that carries its handshake to the end.
fn open(
    address: &str,
    tls: Option<&Tls>,
    stall: Duration,
    connect: &Arc<[u8]>,
    results: &Sender<Finished>,
) -> io::Result<()> {
    let handshake = Handshake::open(address, tls, stall)?;
    let (connect, results) = (Arc::clone(connect), results.clone());
    thread::Builder::new()
        .name("churn-handshake".into())
        .stack_size(HANDSHAKE_STACK_BYTES)
        .spawn(move || {
            // The pacing thread may have returned (the run is over): nobody counts it then.
            let _ = results.send(handshake.finish(&connect));
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use std::net::TcpListener;

    /// What the test server reads and writes: a socket, or TLS over it.
    trait Duplex: Read + Write {}
    impl<T: Read + Write> Duplex for T {}

    /// A server that sends INFO, reads the CONNECT and PING, and answers with `answer`; with
    /// `tls`, it handshakes after the INFO and the rest goes through TLS.
    fn serve_once(
        answer: &'static [u8],
        tls: Option<rustls::ServerConfig>,
    ) -> (String, thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut stream: Box<dyn Duplex> = match tls {
                None => {
                    socket
                        .write_all(b"INFO {\"auth_required\":true}\r\n")
                        .unwrap();
                    Box::new(socket)
                }
                Some(config) => {
                    socket
                        .write_all(b"INFO {\"tls_required\":true}\r\n")
                        .unwrap();
                    let connection = rustls::ServerConnection::new(Arc::new(config)).unwrap();
                    Box::new(rustls::StreamOwned::new(connection, socket))
                }
            };
            let mut received = Vec::new();
            let mut chunk = [0u8; 1024];
            while !received.ends_with(b"PING\r\n") {
                let read = stream.read(&mut chunk).unwrap();
                assert!(read > 0);
                received.extend_from_slice(&chunk[..read]);
            }
            stream.write_all(answer).unwrap();
            stream.flush().unwrap();
            received
        });
        (address, handle)
    }

    fn finish(address: &str, connect: &[u8]) -> Outcome {
        let handshake = Handshake::open(address, None, Duration::from_secs(10)).unwrap();
        handshake.finish(connect).outcome.unwrap()
    }

    #[test]
    fn a_handshake_sends_the_credentials_after_the_info_and_ends_with_the_pong() {
        let credentials = Credentials {
            user: "churn".into(),
            pass: "pw".into(),
        };
        let connect = wire::connect_and_ping(Some(&credentials));
        let (address, server) = serve_once(b"+OK\r\nPONG\r\n", None);
        assert_eq!(finish(&address, &connect), Outcome::Authenticated);
        assert_eq!(server.join().unwrap(), connect);
    }

    #[test]
    fn a_refusal_is_told_by_its_error_or_the_close() {
        let connect = wire::connect_and_ping(None);
        for (answer, refusal) in [
            (
                &b"-ERR 'Authorization Violation'\r\n"[..],
                "-ERR 'Authorization Violation'",
            ),
            (b"", "closed"),
        ] {
            let (address, server) = serve_once(answer, None);
            assert_eq!(finish(&address, &connect), Outcome::Refused(refusal.into()));
            server.join().unwrap();
        }
    }

    #[test]
    fn a_tls_handshake_comes_between_the_info_and_the_connect() {
        let pki = crate::certs::Pki::generate();
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from_pem_file(&pki.server.cert_file).unwrap()],
            rustls::pki_types::PrivateKeyDer::from_pem_file(&pki.server.key_file).unwrap(),
        )
        .unwrap();
        let (address, server) = serve_once(b"PONG\r\n", Some(server_config));
        let options = crate::tls::TlsOptions {
            ca_path: Some(pki.ca_file.to_str().unwrap().to_string()),
            ..Default::default()
        };
        let tls = Tls::new(&options, &address).unwrap();
        let connect = wire::connect_and_ping(None);
        let handshake = Handshake::open(&address, Some(&tls), Duration::from_secs(10)).unwrap();
        assert_eq!(
            handshake.finish(&connect).outcome.unwrap(),
            Outcome::Authenticated
        );
        assert_eq!(server.join().unwrap(), connect);
    }

    #[test]
    fn no_answer_within_the_stall_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handshake = Handshake::open(&address, None, Duration::from_millis(50)).unwrap();
        let finished = handshake.finish(&wire::connect_and_ping(None));
        let mut report = ChurnReport::default();
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        report.finished(finished, &mut histogram);
        assert_eq!((report.timed_out, report.failed), (1, 0));
        assert_eq!(histogram.len(), 0);
    }

    #[test]
    fn the_churn_opens_connections_at_the_rate_asked() {
        // A server that authenticates every connection at once.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                thread::spawn(move || {
                    stream.write_all(b"INFO {}\r\n").unwrap();
                    let mut received = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !received.ends_with(b"PING\r\n") {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(read) => received.extend_from_slice(&chunk[..read]),
                        }
                    }
                    let _ = stream.write_all(b"PONG\r\n");
                });
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let churn = thread::spawn(move || {
            run(
                &address,
                None,
                None,
                200.0,
                Duration::from_secs(10),
                &stopping,
            )
        });
        thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let report = churn.join().unwrap();
        // 100 due in 0.5 s; a loaded test machine may fall a little behind.
        assert!((60..=101).contains(&report.opened), "{report:?}");
        assert!(
            report.authenticated + report.unfinished == report.opened,
            "{report:?}"
        );
        assert_eq!(report.handshake_us.count, report.authenticated);
    }
}
