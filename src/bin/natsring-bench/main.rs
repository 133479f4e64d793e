//! `natsring-bench`: a NATS load generator built never to be the bottleneck.
//!
//! Publishers write pre-built runs of PUB frames in 64 KiB writes; subscribers count MSG
//! frames over 1 MiB reads by arithmetic (see `wire.rs`), creating nothing per message. Works
//! against any NATS server (natsring, nats-server); with `--server-pid` it reports the
//! server's CPU time per message and its resident memory, read from `/proc` (summed over the
//! processes with `--server-pid A,B`: the nodes of a cluster).
//!
//! Modes (in the spirit of `nats bench`):
//! - `pub`: publishers only (`--pubs`).
//! - `sub`: subscribers only, waiting for `--msgs` messages each from an outside publisher.
//! - `pubsub`: `--pubs` publishers and `--subs` subscribers on one subject: every subscriber
//!   gets every message (fan-out is `--subs N`; N publishers to N subscribers is
//!   `--pubs N --subs N`); with `--queue NAME` the subscribers form a queue group and each
//!   message goes to exactly one of them. With `--sub-server` the subscribers connect to
//!   another server than the publishers (the other node of a cluster): before the clock
//!   starts, the run waits until the subscriptions' interest has crossed the route
//!   (`interest.rs`), so no message is published into a node that does not know of them yet.
//!   With `--max-in-flight-bytes B` publishers wait while more than B bytes of their frames
//!   are published and not delivered: across a route nothing slows a publisher down to its
//!   subscriber's pace, and the node that buffers the difference closes someone as a slow
//!   consumer (nats-server's 64 MiB `max_pending`).
//! - `req`: `--clients` requesters each with one request outstanding, `--subs` responders
//!   (a queue group when more than one); round-trip latency percentiles from an HDR
//!   histogram. With `--background-rate R`, one more connection publishes `--background-size`
//!   messages to a subject nobody subscribes to, R a second, paced in 1 ms steps, all through
//!   the measurement (latency under load; the rate it reached is reported). With
//!   `--auth-churn R`, one more thread opens R connections a second that each authenticate
//!   (`--churn-user`/`--churn-pass`) and close (`churn.rs`): what logging in costs the
//!   requesters; the report adds how many authenticated and their handshake times. With
//!   `--tls-churn R` instead, those connections speak TLS (each a full handshake, with the
//!   `--tls-ca` files; the requesters stay plain TCP unless `--tls`): what a TLS handshake
//!   costs the other clients.
//! - `many`: `--conns` publishers each sending a steady trickle (`--rate` msgs/s in all,
//!   `--batch` messages per write) for `--seconds`, to `--subs` subscribers (publisher i
//!   publishes to `<subject>.many.<i % subs>`, subscriber j subscribes to its own): each
//!   message carries its send time, so the report has delivery latency percentiles.
//! - `idle`: `--conns` idle connections each holding one subscription; server memory per
//!   connection.
//! - `handshakes`: `--clients` threads each opening connections one after another for
//!   `--seconds` (connect, TLS handshake with `--tls`, INFO, CONNECT, PING, PONG, close):
//!   handshakes a second and server CPU per handshake (`handshakes.rs`).
//! - `sink`: not a client: a trivial server that answers the handshake and the final PING and
//!   discards everything else, the loopback ceiling for a publisher.
//! - `bcrypt`: not a client: prints the bcrypt hash of `--pass` at `--cost` (for a server's
//!   configuration) and, on stderr, what one check of it costs on this machine.
//!
//! With `--user U --pass P` every connection a mode makes presents them in its CONNECT.
//! With `--tls` every connection (but `--auth-churn`'s) speaks TLS (`tls.rs`): it reads the
//! server's plain INFO, handshakes, and sends everything after through TLS (`--tls-first`:
//! it handshakes before the INFO, for a server with `handshake_first`). `--tls-ca` names the
//! CA to trust; `--tls-cert`/`--tls-key` a client certificate. The files alone mean `--tls`,
//! but with `--tls-churn`: then they are the churn's, and the others' only with `--tls`.
//! A TLS publisher of pub and pubsub seals its whole run before the start line (the records
//! it would seal write by write; up to `tls::PRESEAL_BYTES_MAX` for all), so that while the server
//! is measured its core only writes: sealing as it went, at 1 KiB it was the bottleneck.
//!
//! Every delivery is checked: a subscriber that misses or duplicates a message fails the
//! run (exit status 1) unless `--allow-loss`.

// The TLS tests' certificates, generated per run (rcgen, a dev-dependency).
#[cfg(test)]
#[path = "../../../tests/common/certs.rs"]
mod certs;
mod churn;
mod handshakes;
mod interest;
mod many;
mod server_stats;
mod tls;
mod wire;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use wire::{Client, Credentials, MsgCounter, Target};

const USAGE: &str = "\
usage: natsring-bench <pub|sub|pubsub|req|many|idle|handshakes|sink|bcrypt> [options]

  --server HOST:PORT   server address (default 127.0.0.1:4222)
  --sub-server HOST:PORT
                       pubsub mode: the subscribers connect here instead (another node of
                       a cluster); the run starts once their interest reached --server
  --max-in-flight-bytes B
                       pubsub mode: publishers wait while the messages published and not
                       yet delivered exceed B bytes of PUB frames (a window: what no
                       server's buffers for a slow path may exceed; default: no limit)
  --subject S          subject (default bench)
  --size BYTES         payload size (default 16)
  --msgs N             messages in all (pub, pubsub: split over publishers; req: requests
                       in all; sub: messages each subscriber waits for) (default 1000000)
  --pubs N             publishers (default 1; 0 in sub mode)
  --subs N             subscribers, or responders in req mode (default 1; 0 in pub mode)
  --queue NAME         subscribers join this queue group
  --clients N          requesters in req mode, concurrent connectors in handshakes mode
                       (default 1)
  --background-rate R  req mode: one more publisher sends R msgs/s (to bench.background) meanwhile
  --background-size B  its payload size (default 16)
  --max-seconds S      req mode: each requester stops after S seconds even if --msgs are not done
  --auth-churn R       req mode: one more thread opens R connections/s meanwhile, each
                       INFO, CONNECT with credentials, PING, PONG (or -ERR), close
  --tls-churn R        req mode: the same, each connection a full TLS handshake after the
                       INFO (the --tls-ca files; the others plain TCP unless --tls)
  --churn-user U       their user (default --user)
  --churn-pass P       their password (default --pass)
  --conns N            idle connections in idle mode, publishers in many mode (default 1000)
  --rate R             many mode: messages per second from all publishers (default 1000000)
  --batch K            many mode: messages per publisher write (default 10)
  --seconds S          many mode: how long the publishers send; handshakes mode: how long
                       the connectors connect (default 5)
  --table-subs N       before the run, one more connection subscribes N distinct subjects
                       (bench.table.<i>) that the run's messages do not match
  --server-pid PID[,PID...]
                       report this process's CPU per message and RSS (the sums over
                       all of them: the nodes of a cluster)
  --shards N           the server has N shards (natsring): place connections with
  --pub-shard I        publishers on shard I
  --sub-shard J        subscribers on shard J
  --stall SECONDS      fail when no progress for this long (default 10)
  --allow-loss         report missing messages instead of failing
  --user U --pass P    every connection authenticates as U with password P
  --tls                every connection speaks TLS after the server's INFO (not
                       --auth-churn's; the default with --tls-ca, but with --tls-churn)
  --tls-ca PATH        PEM file of the CA the server's certificate chains to
  --tls-cert PATH      PEM file of a client certificate (with --tls-key)
  --tls-key PATH       PEM file of its private key
  --tls-first          handshake before the INFO (the server's tls handshake_first)
  --tls-no-verify      do not check the server's certificate and signature: the
                       handshakes mode measures the server's cost, and checking is
                       most of the generator's (never for anything but a benchmark)
  --port P             sink mode: port to listen on (default 4222)
  --cost C             bcrypt mode: the cost of the hash of --pass (default 11, as
                       `nats server passwd`)
  --json               one JSON object on stdout instead of the table
";

#[derive(Clone, Debug)]
struct Config {
    mode: String,
    target: Target,
    /// pubsub mode: where the subscribers connect (`--sub-server`), when not `target`.
    sub_target: Option<Target>,
    /// pubsub mode: the most bytes of PUB frames published and not yet delivered
    /// (`--max-in-flight-bytes`); none: publishers never wait.
    in_flight_bytes_max: Option<usize>,
    subject: String,
    payload_size: usize,
    message_count: u64,
    publisher_count: usize,
    subscriber_count: usize,
    queue: Option<String>,
    requester_count: usize,
    background_rate: f64,
    background_size: usize,
    max_seconds: Option<Duration>,
    /// req mode: churning connections a second (`--auth-churn`, `--tls-churn`; 0: none).
    churn_rate: f64,
    /// How the churn's connections speak TLS (`--tls-churn`); none: plain.
    churn_tls: Option<tls::Tls>,
    /// What the churn's connections present (`--churn-user`/`--churn-pass`, else the target's).
    churn_credentials: Option<Credentials>,
    /// bcrypt mode: the password (`--pass`) and the hash's cost.
    bcrypt_password: String,
    bcrypt_cost: u32,
    rate: f64,
    batch: usize,
    seconds: f64,
    idle_conn_count: usize,
    table_sub_count: usize,
    /// The server processes whose CPU and memory are reported, summed (`--server-pid`).
    server_pids: Vec<u32>,
    pub_shard: Option<usize>,
    sub_shard: Option<usize>,
    stall: Duration,
    allow_loss: bool,
    sink_port: u16,
    json: bool,
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let mode = args.first().ok_or("missing mode")?.clone();
    if ![
        "pub",
        "sub",
        "pubsub",
        "req",
        "many",
        "idle",
        "handshakes",
        "sink",
        "bcrypt",
    ]
    .contains(&mode.as_str())
    {
        return Err(format!("unknown mode {mode:?}"));
    }
    let mut config = Config {
        target: Target {
            address: "127.0.0.1:4222".into(),
            shard_count: None,
            credentials: None,
            tls: None,
        },
        sub_target: None,
        in_flight_bytes_max: None,
        subject: "bench".into(),
        payload_size: 16,
        message_count: 1_000_000,
        publisher_count: if mode == "sub" { 0 } else { 1 },
        subscriber_count: if mode == "pub" { 0 } else { 1 },
        queue: None,
        requester_count: 1,
        background_rate: 0.0,
        background_size: 16,
        max_seconds: None,
        churn_rate: 0.0,
        churn_tls: None,
        churn_credentials: None,
        bcrypt_password: String::new(),
        bcrypt_cost: 11,
        rate: 1e6,
        batch: 10,
        seconds: 5.0,
        idle_conn_count: 1000,
        table_sub_count: 0,
        server_pids: Vec::new(),
        pub_shard: None,
        sub_shard: None,
        stall: Duration::from_secs(10),
        allow_loss: false,
        sink_port: 4222,
        json: false,
        mode,
    };
    // Each given or not; paired (and the churn's defaulted) once all are read.
    let (mut user, mut pass, mut churn_user, mut churn_pass) = (None, None, None, None);
    // `--tls` and its files: read into `target.tls` once all options are known.
    let mut tls_options = None;
    // `--tls` given itself (the files imply it, but with `--tls-churn`).
    let mut tls_flag = false;
    // `--auth-churn R` or `--tls-churn R`: the rate, and whether it was the TLS one.
    let mut churn = None;
    let mut sub_address = None;
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        fn number<T: std::str::FromStr>(flag: &str, text: String) -> Result<T, String> {
            text.replace('_', "")
                .parse()
                .map_err(|_| format!("{flag}: not a number: {text:?}"))
        }
        match flag.as_str() {
            "--server" => config.target.address = value()?,
            "--sub-server" => sub_address = Some(value()?),
            "--max-in-flight-bytes" => config.in_flight_bytes_max = Some(number(flag, value()?)?),
            "--subject" => config.subject = value()?,
            "--size" => config.payload_size = number(flag, value()?)?,
            "--msgs" => config.message_count = number(flag, value()?)?,
            "--pubs" => config.publisher_count = number(flag, value()?)?,
            "--subs" => config.subscriber_count = number(flag, value()?)?,
            "--queue" => config.queue = Some(value()?),
            "--clients" => config.requester_count = number(flag, value()?)?,
            "--background-rate" => config.background_rate = number(flag, value()?)?,
            "--background-size" => config.background_size = number(flag, value()?)?,
            "--rate" => config.rate = number(flag, value()?)?,
            "--batch" => config.batch = number::<usize>(flag, value()?)?.max(1),
            "--seconds" => config.seconds = number(flag, value()?)?,
            "--max-seconds" => {
                config.max_seconds = Some(Duration::from_secs_f64(number(flag, value()?)?))
            }
            "--auth-churn" | "--tls-churn" => {
                if churn.is_some() {
                    return Err("--auth-churn or --tls-churn, once".into());
                }
                churn = Some((number::<f64>(flag, value()?)?, flag == "--tls-churn"))
            }
            "--user" => user = Some(value()?),
            "--pass" => pass = Some(value()?),
            "--churn-user" => churn_user = Some(value()?),
            "--churn-pass" => churn_pass = Some(value()?),
            "--cost" => config.bcrypt_cost = number(flag, value()?)?,
            "--conns" => config.idle_conn_count = number(flag, value()?)?,
            "--table-subs" => config.table_sub_count = number(flag, value()?)?,
            "--server-pid" => {
                for pid in value()?.split(',') {
                    config.server_pids.push(number(flag, pid.to_string())?);
                }
            }
            "--shards" => config.target.shard_count = Some(number(flag, value()?)?),
            "--pub-shard" => config.pub_shard = Some(number(flag, value()?)?),
            "--sub-shard" => config.sub_shard = Some(number(flag, value()?)?),
            "--stall" => config.stall = Duration::from_secs_f64(number(flag, value()?)?),
            "--allow-loss" => config.allow_loss = true,
            "--port" => config.sink_port = number(flag, value()?)?,
            "--json" => config.json = true,
            "--tls" => {
                tls_flag = true;
                tls_options.get_or_insert_with(tls::TlsOptions::default);
            }
            "--tls-ca" => {
                tls_options
                    .get_or_insert_with(tls::TlsOptions::default)
                    .ca_path = Some(value()?)
            }
            "--tls-cert" => {
                tls_options
                    .get_or_insert_with(tls::TlsOptions::default)
                    .cert_path = Some(value()?)
            }
            "--tls-key" => {
                tls_options
                    .get_or_insert_with(tls::TlsOptions::default)
                    .key_path = Some(value()?)
            }
            "--tls-first" => {
                tls_options
                    .get_or_insert_with(tls::TlsOptions::default)
                    .first = true
            }
            "--tls-no-verify" => {
                tls_options
                    .get_or_insert_with(tls::TlsOptions::default)
                    .no_verify = true
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if config.message_count == 0 {
        return Err("--msgs must be at least 1".into());
    }
    let pair = |user: Option<String>, pass: Option<String>, flags: &str| match (user, pass) {
        (Some(user), Some(pass)) => Ok(Some(Credentials { user, pass })),
        (None, None) => Ok(None),
        _ => Err(format!("{flags} go together")),
    };
    if config.mode == "bcrypt" {
        config.bcrypt_password = pass.ok_or("bcrypt needs --pass")?;
        if !(4..=31).contains(&config.bcrypt_cost) {
            return Err("--cost must be 4 to 31".into());
        }
        return Ok(config);
    }
    config.churn_credentials = pair(
        churn_user.or_else(|| user.clone()),
        churn_pass.or_else(|| pass.clone()),
        "--churn-user and --churn-pass (or --user and --pass)",
    )?;
    config.target.credentials = pair(user, pass, "--user and --pass")?;
    let (churn_rate, churn_tls) = churn.unwrap_or((0.0, false));
    config.churn_rate = churn_rate;
    if churn_rate < 0.0 || !churn_rate.is_finite() {
        return Err("--auth-churn and --tls-churn take a rate of 0 or more".into());
    }
    if churn_rate > 0.0 && config.mode != "req" {
        return Err("--auth-churn and --tls-churn are for req mode".into());
    }
    if tls_options.is_some() && churn_rate > 0.0 && !churn_tls {
        return Err("--auth-churn does not speak TLS: not with --tls (--tls-churn does)".into());
    }
    if churn_tls && tls_options.is_none() {
        return Err(
            "--tls-churn needs --tls-ca (the CA the server's certificate chains to)".into(),
        );
    }
    if tls_options.is_some() && config.mode == "sink" {
        return Err("the sink does not speak TLS".into());
    }
    if config.mode == "pubsub" && (config.publisher_count == 0 || config.subscriber_count == 0) {
        return Err("pubsub needs --pubs and --subs of at least 1".into());
    }
    if let Some(options) = &tls_options {
        let tls = tls::Tls::new(options, &config.target.address).map_err(|err| err.to_string())?;
        if churn_tls {
            config.churn_tls = Some(tls.clone());
        }
        if tls_flag || !churn_tls {
            config.target.tls = Some(tls);
        }
    }
    if config.in_flight_bytes_max.is_some() && config.mode != "pubsub" {
        return Err("--max-in-flight-bytes is for pubsub mode".into());
    }
    if let Some(address) = sub_address {
        if config.mode != "pubsub" {
            return Err("--sub-server is for pubsub mode".into());
        }
        config.sub_target = Some(Target {
            address,
            ..config.target.clone()
        });
    }
    Ok(config)
}

/// What a run measured; printed as a table or as JSON.
#[derive(Debug, Default, Serialize)]
struct Report {
    mode: String,
    payload_bytes: usize,
    publishers: usize,
    subscribers: usize,
    queue: Option<String>,
    published: u64,
    delivered: u64,
    /// Deliveries a lossless run makes.
    expected_deliveries: u64,
    seconds: f64,
    publish_rate_msgs: f64,
    delivery_rate_msgs: f64,
    /// Payload bytes per second through the server: delivered, or published when nothing is
    /// delivered.
    payload_rate_bytes: f64,
    server_cpu_seconds: Option<f64>,
    /// Server CPU per delivered message (per published message when nothing is delivered).
    server_cpu_ns_per_msg: Option<f64>,
    server_rss_bytes: Option<u64>,
    server_rss_before_bytes: Option<u64>,
    server_rss_per_conn_bytes: Option<f64>,
    latency_us: Option<Latency>,
    /// req with --background-rate: the rate the background publisher reached.
    background_rate_msgs: Option<f64>,
    /// req with --auth-churn: what the authenticating connections did (absent otherwise, so
    /// other runs' JSON is as it always was).
    #[serde(skip_serializing_if = "Option::is_none")]
    churn: Option<churn::ChurnReport>,
    table_subs: usize,
    conns: usize,
}

#[derive(Debug, Default, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    count: u64,
}

impl Latency {
    /// The percentiles, in microseconds, of a histogram of nanoseconds.
    fn of(histogram: &Histogram<u64>) -> Latency {
        let micros = |nanos: u64| nanos as f64 / 1000.0;
        Latency {
            p50: micros(histogram.value_at_quantile(0.50)),
            p90: micros(histogram.value_at_quantile(0.90)),
            p99: micros(histogram.value_at_quantile(0.99)),
            p999: micros(histogram.value_at_quantile(0.999)),
            max: micros(histogram.max()),
            count: histogram.len(),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse_args(&args) {
        Ok(config) => config,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("natsring-bench: {message}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match config.mode.as_str() {
        "sink" => sink(&config).map(|()| None),
        "bcrypt" => bcrypt_hash(&config).map(|()| None),
        "req" => request_reply(&config).map(Some),
        "idle" => idle(&config).map(Some),
        "many" => many::run(&config).map(Some),
        "handshakes" => handshakes::run(&config).map(Some),
        _ => throughput(&config).map(Some),
    };
    match result {
        Ok(Some(report)) => {
            if config.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serializes")
                );
            } else {
                print_table(&report);
            }
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("natsring-bench: FAILED: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Counters the run's threads share; updated once per read or per write, not per message.
#[derive(Default)]
struct Progress {
    published: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicBool,
}

/// One more connection holding `count` subscriptions on distinct subjects the run does not
/// publish to (the subject table's size).
fn subscribe_table(config: &Config) -> io::Result<Option<Client>> {
    if config.table_sub_count == 0 {
        return Ok(None);
    }
    let mut client = Client::connect(&config.target, None)?;
    let mut batch = Vec::with_capacity(1 << 20);
    for index in 0..config.table_sub_count {
        batch.extend_from_slice(format!("SUB bench.table.{index} {}\r\n", index + 1).as_bytes());
        if batch.len() >= (1 << 20) - 64 {
            client.stream.write_all(&batch)?;
            batch.clear();
            // Bound what the server has to buffer and keep PINGs answered.
            client.round_trip()?;
        }
    }
    client.stream.write_all(&batch)?;
    client
        .stream
        .set_read_timeout(Some(Duration::from_secs(120)))?;
    client.round_trip()?;
    Ok(Some(client))
}

fn throughput(config: &Config) -> io::Result<Report> {
    let table = subscribe_table(config)?;
    let subscriber_count = config.subscriber_count;
    let publisher_count = config.publisher_count;
    let total_published = config.message_count;
    let expected_each = if config.mode == "sub" {
        config.message_count
    } else {
        total_published
    };
    let expected_deliveries = if subscriber_count == 0 {
        0
    } else if config.queue.is_some() {
        expected_each
    } else {
        expected_each * subscriber_count as u64
    };

    // Connect and subscribe everything before the clock starts.
    let sub_target = config.sub_target.as_ref().unwrap_or(&config.target);
    let mut subscribers = Vec::new();
    for index in 0..subscriber_count {
        let mut client = Client::connect(sub_target, config.sub_shard)?;
        let sid = (index + 1).to_string();
        let sub = match &config.queue {
            Some(queue) => format!("SUB {} {queue} {sid}\r\n", config.subject),
            None => format!("SUB {} {sid}\r\n", config.subject),
        };
        client.stream.write_all(sub.as_bytes())?;
        client.round_trip()?;
        subscribers.push((client, sid));
    }
    let mut publishers = Vec::new();
    for _ in 0..publisher_count {
        publishers.push(Client::connect(&config.target, config.pub_shard)?);
    }
    if config.sub_target.is_some() {
        // Another server: its subscriptions reach the publishers' server over a route, in
        // their own time.
        let mut clients: Vec<&mut Client> =
            subscribers.iter_mut().map(|(client, _)| client).collect();
        interest::await_route(
            &mut publishers[0],
            &mut clients,
            &config.subject,
            config.stall,
        )?;
    }
    for (client, _) in &mut subscribers {
        client
            .stream
            .set_read_timeout(Some(Duration::from_millis(200)))?;
    }

    let progress = Arc::new(Progress::default());
    let start_line = Arc::new(Barrier::new(subscriber_count + publisher_count + 1));
    let mut subscriber_threads = Vec::new();
    for (mut client, sid) in subscribers {
        let progress = Arc::clone(&progress);
        let start_line = Arc::clone(&start_line);
        let config = config.clone();
        subscriber_threads.push(thread::spawn(move || -> io::Result<(u64, Instant)> {
            let mut counter = MsgCounter::new(&config.subject, &sid, config.payload_size);
            counter.prime(&std::mem::take(&mut client.leftover));
            start_line.wait();
            let mut received = 0u64;
            let mut last_progress = Instant::now();
            let mut last_message = Instant::now();
            let queue_mode = config.queue.is_some();
            loop {
                let done = if queue_mode {
                    progress.delivered.load(Ordering::Relaxed) >= expected_deliveries
                } else {
                    received >= expected_each
                };
                if done || progress.failed.load(Ordering::Relaxed) {
                    break;
                }
                let Some(counted) = counter.read_and_count(&mut client.stream)? else {
                    return Err(io::Error::other(format!(
                        "subscriber {sid}: server closed the connection after {received} messages"
                    )));
                };
                if counted.messages > 0 {
                    received += counted.messages;
                    progress
                        .delivered
                        .fetch_add(counted.messages, Ordering::Relaxed);
                    last_progress = Instant::now();
                    last_message = last_progress;
                } else if last_progress.elapsed() > config.stall {
                    if config.allow_loss {
                        break;
                    }
                    return Err(io::Error::other(format!(
                        "subscriber {sid}: no message for {:?}, {received} of {expected_each} received",
                        config.stall
                    )));
                }
            }
            // Anything still on its way (a duplicate, a message past the count) arrives
            // before the PONG of this PING.
            client.stream.write_all(b"PING\r\n")?;
            let waited_since = Instant::now();
            loop {
                let Some(counted) = counter.read_and_count(&mut client.stream)? else {
                    return Err(io::Error::other("server closed during the final PING"));
                };
                received += counted.messages;
                progress
                    .delivered
                    .fetch_add(counted.messages, Ordering::Relaxed);
                if counted.pongs > 0 {
                    break;
                }
                if waited_since.elapsed() > config.stall {
                    return Err(io::Error::other("no PONG for the final PING"));
                }
            }
            Ok((received, last_message))
        }));
    }
    let per_publisher = total_published / publisher_count.max(1) as u64;
    // Deliveries one published message makes, to count messages in flight (`--max-in-flight-bytes`).
    let deliveries_per_message = if config.queue.is_some() {
        1
    } else {
        subscriber_count.max(1) as u64
    };
    let mut publisher_threads = Vec::new();
    for (index, mut client) in publishers.into_iter().enumerate() {
        let progress = Arc::clone(&progress);
        let start_line = Arc::clone(&start_line);
        let config = config.clone();
        // The first publisher takes the remainder.
        let count = per_publisher
            + if index == 0 {
                total_published % publisher_count as u64
            } else {
                0
            };
        publisher_threads.push(thread::spawn(move || -> io::Result<(Instant, Client)> {
            let payload = wire::payload(config.payload_size);
            let frame_len = wire::pub_frame_len(&config.subject, None, config.payload_size);
            let frames_per_write =
                (wire::PUBLISH_WRITE_BYTES / frame_len).max(wire::PUBLISH_WRITE_FRAMES_MIN);
            let run = wire::pub_frames(&config.subject, None, &payload, frames_per_write);
            let presealed = client.stream.preseal(
                &run,
                frame_len,
                frames_per_write,
                count,
                tls::PRESEAL_BYTES_MAX / publisher_count.max(1),
            );
            let mut sealed = presealed.as_ref().map(tls::Presealed::writes);
            // Messages all publishers may have in flight: at least one write's.
            let window = config
                .in_flight_bytes_max
                .map(|bytes| (bytes / frame_len).max(frames_per_write) as u64);
            start_line.wait();
            let mut left = count;
            while left > 0 {
                let frames = left.min(frames_per_write as u64) as usize;
                if let Some(window) = window {
                    wait_for_window(&progress, window, deliveries_per_message, config.stall)?;
                }
                match sealed.as_mut().and_then(Iterator::next) {
                    Some(records) => client.stream.write_sealed(records)?,
                    None => client.stream.write_all(&run[..frames * frame_len])?,
                }
                left -= frames as u64;
                progress
                    .published
                    .fetch_add(frames as u64, Ordering::Relaxed);
                if progress.failed.load(Ordering::Relaxed) {
                    return Err(io::Error::other("stopped: another thread failed"));
                }
            }
            client.stream.set_read_timeout(Some(config.stall))?;
            client.round_trip()?;
            // The connection stays open until the server's CPU has been read: a server
            // thread serving it (the sink's) would take its CPU time with it.
            Ok((Instant::now(), client))
        }));
    }

    let cpu_before = server_stats::cpu_ns_sum(&config.server_pids);
    let rss_before = server_stats::rss_bytes_sum(&config.server_pids);
    start_line.wait();
    let start = Instant::now();
    let reporter = spawn_progress(Arc::clone(&progress), total_published, expected_deliveries);

    let mut errors = Vec::new();
    let mut published_at = start;
    let mut finished_publishers = Vec::new();
    for handle in publisher_threads {
        match handle.join().expect("publisher thread") {
            Ok((done, client)) => {
                published_at = published_at.max(done);
                finished_publishers.push(client);
            }
            Err(err) => {
                progress.failed.store(true, Ordering::Relaxed);
                errors.push(format!("publisher: {err}"));
            }
        }
    }
    let mut delivered = 0;
    let mut delivered_at = start;
    let mut per_subscriber = Vec::new();
    for handle in subscriber_threads {
        match handle.join().expect("subscriber thread") {
            Ok((received, last)) => {
                delivered += received;
                delivered_at = delivered_at.max(last);
                per_subscriber.push(received);
            }
            Err(err) => {
                progress.failed.store(true, Ordering::Relaxed);
                errors.push(err.to_string());
            }
        }
    }
    let end = published_at.max(delivered_at);
    let cpu_after = server_stats::cpu_ns_sum(&config.server_pids);
    let rss_after = server_stats::rss_bytes_sum(&config.server_pids);
    reporter.stop();
    drop(finished_publishers);
    drop(table);
    if !errors.is_empty() {
        return Err(io::Error::other(errors.join("; ")));
    }
    if !config.allow_loss {
        let wrong: Vec<_> = per_subscriber
            .iter()
            .enumerate()
            .filter(|(_, &received)| config.queue.is_none() && received != expected_each)
            .collect();
        if !wrong.is_empty() || delivered != expected_deliveries {
            return Err(io::Error::other(format!(
                "delivered {delivered} of {expected_deliveries} (per subscriber: {per_subscriber:?})"
            )));
        }
        if config.queue.is_some() && per_subscriber.contains(&0) {
            return Err(io::Error::other(format!(
                "a queue member got nothing: {per_subscriber:?}"
            )));
        }
    }

    let seconds = (end - start).as_secs_f64();
    let published = if config.mode == "sub" {
        0
    } else {
        total_published
    };
    let counted_messages = if delivered > 0 { delivered } else { published };
    let server_cpu_ns = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64),
        _ => None,
    };
    let publish_seconds = (published_at - start).as_secs_f64();
    Ok(Report {
        mode: config.mode.clone(),
        payload_bytes: config.payload_size,
        publishers: publisher_count,
        subscribers: subscriber_count,
        queue: config.queue.clone(),
        published,
        delivered,
        expected_deliveries,
        seconds,
        publish_rate_msgs: if publisher_count > 0 {
            published as f64 / publish_seconds
        } else {
            0.0
        },
        delivery_rate_msgs: delivered as f64 / seconds,
        payload_rate_bytes: (counted_messages * config.payload_size as u64) as f64 / seconds,
        server_cpu_seconds: server_cpu_ns.map(|ns| ns / 1e9),
        server_cpu_ns_per_msg: server_cpu_ns.map(|ns| ns / counted_messages as f64),
        server_rss_bytes: rss_after,
        server_rss_before_bytes: rss_before,
        table_subs: config.table_sub_count,
        ..Report::default()
    })
}

/// Returns once fewer than `window` messages are published and not yet delivered (each
/// delivered `deliveries_per_message` times), sleeping meanwhile: a spinning publisher would
/// take a CPU from the servers it measures. An error when another thread failed, or when no
/// delivery came for `stall` (a lost message never frees the window).
fn wait_for_window(
    progress: &Progress,
    window: u64,
    deliveries_per_message: u64,
    stall: Duration,
) -> io::Result<()> {
    const NAP: Duration = Duration::from_micros(100);
    let mut delivered = progress.delivered.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    loop {
        let published = progress.published.load(Ordering::Relaxed);
        if published.saturating_sub(delivered / deliveries_per_message) < window {
            return Ok(());
        }
        if progress.failed.load(Ordering::Relaxed) {
            return Err(io::Error::other("stopped: another thread failed"));
        }
        if last_progress.elapsed() > stall {
            return Err(io::Error::other(format!(
                "{window} messages in flight and no delivery for {stall:?}"
            )));
        }
        thread::sleep(NAP);
        let now = progress.delivered.load(Ordering::Relaxed);
        if now != delivered {
            delivered = now;
            last_progress = Instant::now();
        }
    }
}

/// Prints progress to stderr once a second, starting after three seconds.
struct ProgressReporter {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<()>,
}

impl ProgressReporter {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("progress thread");
    }
}

fn spawn_progress(progress: Arc<Progress>, published: u64, delivered: u64) -> ProgressReporter {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let handle = thread::spawn(move || {
        let start = Instant::now();
        let mut next = Duration::from_secs(3);
        while !stopping.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
            if start.elapsed() >= next {
                next += Duration::from_secs(1);
                eprintln!(
                    "  {:>5.1} s: published {} of {published}, delivered {} of {delivered}",
                    start.elapsed().as_secs_f64(),
                    progress.published.load(Ordering::Relaxed),
                    progress.delivered.load(Ordering::Relaxed),
                );
            }
        }
    });
    ProgressReporter { stop, handle }
}

fn request_reply(config: &Config) -> io::Result<Report> {
    let table = subscribe_table(config)?;
    let responder_count = config.subscriber_count.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let mut responder_threads = Vec::new();
    for index in 0..responder_count {
        let mut client = Client::connect(&config.target, config.sub_shard)?;
        let sub = if responder_count > 1 {
            format!("SUB {} responders {}\r\n", config.subject, index + 1)
        } else {
            format!("SUB {} {}\r\n", config.subject, index + 1)
        };
        client.stream.write_all(sub.as_bytes())?;
        client.round_trip()?;
        client
            .stream
            .set_read_timeout(Some(Duration::from_millis(100)))?;
        let stop = Arc::clone(&stop);
        let payload = wire::payload(config.payload_size);
        responder_threads.push(thread::spawn(move || respond(client, &payload, &stop)));
    }

    let requester_count = config.requester_count.max(1);
    let per_requester = (config.message_count / requester_count as u64).max(1);
    let warmup = (per_requester / 10).min(1000);
    let start_line = Arc::new(Barrier::new(requester_count + 1));
    let mut requester_threads = Vec::new();
    // Round trips made, warm-up included, by all requesters (they may stop early: --max-seconds).
    let rounds_made = Arc::new(AtomicU64::new(0));
    for index in 0..requester_count {
        let mut client = Client::connect(&config.target, config.pub_shard)?;
        let inbox = format!("_INBOX.bench.{index}");
        client
            .stream
            .write_all(format!("SUB {inbox} 1\r\n").as_bytes())?;
        client.round_trip()?;
        client.stream.set_read_timeout(Some(config.stall))?;
        let start_line = Arc::clone(&start_line);
        let rounds_made = Arc::clone(&rounds_made);
        let config = config.clone();
        requester_threads.push(thread::spawn(move || -> io::Result<Histogram<u64>> {
            let payload = wire::payload(config.payload_size);
            let request = wire::pub_frames(&config.subject, Some(&inbox), &payload, 1);
            let mut counter = MsgCounter::new(&inbox, "1", config.payload_size);
            counter.prime(&std::mem::take(&mut client.leftover));
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
            start_line.wait();
            let started = Instant::now();
            for round in 0..warmup + per_requester {
                if config
                    .max_seconds
                    .is_some_and(|max| started.elapsed() > max)
                {
                    break;
                }
                rounds_made.fetch_add(1, Ordering::Relaxed);
                let sent_at = Instant::now();
                client.stream.write_all(&request)?;
                let mut replies = 0;
                while replies == 0 {
                    match counter.read_and_count(&mut client.stream)? {
                        Some(counted) => replies += counted.messages,
                        None => return Err(io::Error::other("server closed a requester")),
                    }
                    if replies == 0 && sent_at.elapsed() > config.stall {
                        return Err(io::Error::other(format!(
                            "no reply in {:?} (request {round})",
                            config.stall
                        )));
                    }
                }
                if replies != 1 {
                    return Err(io::Error::other(format!(
                        "{replies} replies to one request"
                    )));
                }
                // Warm-up: the first rounds, or with --max-seconds its first tenth (a server
                // under load may make few round trips).
                let warming = match config.max_seconds {
                    Some(max) => sent_at.duration_since(started) < max / 10,
                    None => round < warmup,
                };
                if !warming {
                    let nanos = sent_at.elapsed().as_nanos() as u64;
                    histogram.saturating_record(nanos.max(1));
                }
            }
            Ok(histogram)
        }));
    }
    let background = if config.background_rate > 0.0 {
        let client = Client::connect(&config.target, config.pub_shard)?;
        let (stop, config) = (Arc::clone(&stop), config.clone());
        Some(thread::spawn(move || background(client, &config, &stop)))
    } else {
        None
    };
    let churn = if config.churn_rate > 0.0 {
        let (stop, config) = (Arc::clone(&stop), config.clone());
        Some(thread::spawn(move || {
            churn::run(
                &config.target.address,
                config.churn_credentials.as_ref(),
                config.churn_tls.as_ref(),
                config.churn_rate,
                config.stall,
                &stop,
            )
        }))
    } else {
        None
    };
    let cpu_before = server_stats::cpu_ns_sum(&config.server_pids);
    start_line.wait();
    let start = Instant::now();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    let mut errors = Vec::new();
    for handle in requester_threads {
        match handle.join().expect("requester thread") {
            Ok(part) => histogram.add(&part).expect("same bounds"),
            Err(err) => errors.push(err.to_string()),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = server_stats::cpu_ns_sum(&config.server_pids);
    stop.store(true, Ordering::Relaxed);
    for handle in responder_threads {
        if let Err(err) = handle.join().expect("responder thread") {
            errors.push(format!("responder: {err}"));
        }
    }
    let background_rate = match background.map(|handle| handle.join().expect("background")) {
        Some(Ok(rate)) => Some(rate),
        Some(Err(err)) => {
            errors.push(format!("background publisher: {err}"));
            None
        }
        None => None,
    };
    let churn = churn.map(|handle| handle.join().expect("churn"));
    drop(table);
    if !errors.is_empty() {
        // What the churn did is part of why a requester failed (a server stalled by logins).
        if let Some(churn) = &churn {
            errors.push(format!(
                "churn meanwhile: {} of {} connections authenticated ({:.1}/s), {} refused",
                churn.authenticated, churn.opened, churn.authenticated_rate, churn.refused
            ));
        }
        return Err(io::Error::other(errors.join("; ")));
    }
    let rounds = rounds_made.load(Ordering::Relaxed);
    // A request and its reply are two messages through the server.
    let server_cpu_ns = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64),
        _ => None,
    };
    Ok(Report {
        mode: config.mode.clone(),
        payload_bytes: config.payload_size,
        publishers: requester_count,
        subscribers: responder_count,
        published: rounds,
        delivered: rounds * 2,
        expected_deliveries: rounds * 2,
        seconds,
        publish_rate_msgs: rounds as f64 / seconds,
        delivery_rate_msgs: (rounds * 2) as f64 / seconds,
        payload_rate_bytes: (rounds * 2 * config.payload_size as u64) as f64 / seconds,
        server_cpu_seconds: server_cpu_ns.map(|ns| ns / 1e9),
        server_cpu_ns_per_msg: server_cpu_ns.map(|ns| ns / (rounds * 2) as f64),
        server_rss_bytes: server_stats::rss_bytes_sum(&config.server_pids),
        latency_us: Some(Latency::of(&histogram)),
        background_rate_msgs: background_rate,
        churn,
        table_subs: config.table_sub_count,
        ..Report::default()
    })
}

/// The background publisher of `req --background-rate`: every millisecond it writes the
/// messages due by then (at most 10 ms of them: a server that cannot keep up slows it down, it
/// does not get a burst later), until `stop`. Returns the rate it reached.
fn background(mut client: Client, config: &Config, stop: &AtomicBool) -> io::Result<f64> {
    const STEP: Duration = Duration::from_millis(1);
    let payload = wire::payload(config.background_size);
    let frame = wire::pub_frames("bench.background", None, &payload, 1);
    let per_step = (config.background_rate / 1000.0).ceil().max(1.0) as usize;
    let frames = wire::pub_frames("bench.background", None, &payload, per_step * 10);
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * config.background_rate) as u64;
        let count = (due.saturating_sub(sent) as usize).min(per_step * 10);
        if count > 0 {
            client.stream.write_all(&frames[..count * frame.len()])?;
            sent += count as u64;
        }
        let steps = (start.elapsed().as_nanos() / STEP.as_nanos()) as u32;
        if let Some(wait) = (start + STEP * (steps + 1)).checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    client.round_trip()?;
    Ok(sent as f64 / start.elapsed().as_secs_f64())
}

/// A responder: answers every request with a message of the same payload size, one write
/// per read.
fn respond(mut client: Client, payload: &[u8], stop: &AtomicBool) -> io::Result<()> {
    let mut input = std::mem::take(&mut client.leftover);
    let mut replies = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let read = match client.stream.read(&mut chunk) {
            Ok(0) => return Err(io::Error::other("server closed a responder")),
            Ok(read) => read,
            Err(err)
                if err.kind() == io::ErrorKind::WouldBlock
                    || err.kind() == io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(err) => return Err(err),
        };
        input.extend_from_slice(&chunk[..read]);
        let mut position = 0;
        loop {
            let rest = &input[position..];
            if rest.starts_with(b"PING\r\n") {
                replies.extend_from_slice(b"PONG\r\n");
                position += 6;
                continue;
            }
            if rest.starts_with(b"PONG\r\n") {
                position += 6;
                continue;
            }
            if rest.starts_with(b"INFO ") || rest.starts_with(b"+OK") {
                match memchr::memchr(b'\n', rest) {
                    Some(end) => {
                        position += end + 1;
                        continue;
                    }
                    None => break,
                }
            }
            if rest.is_empty() {
                break;
            }
            if !rest.starts_with(b"MSG ") {
                return Err(io::Error::other(format!(
                    "responder got {:?}",
                    String::from_utf8_lossy(&rest[..rest.len().min(80)])
                )));
            }
            let Some(head) = wire::msg_head(rest)? else {
                break;
            };
            if let Some(reply) = head.reply {
                replies.extend_from_slice(b"PUB ");
                replies.extend_from_slice(reply);
                replies.push(b' ');
                replies.extend_from_slice(payload.len().to_string().as_bytes());
                replies.extend_from_slice(b"\r\n");
                replies.extend_from_slice(payload);
                replies.extend_from_slice(b"\r\n");
            }
            position += head.frame_len;
        }
        input.drain(..position);
        if !replies.is_empty() {
            client.stream.write_all(&replies)?;
            replies.clear();
        }
    }
    Ok(())
}

/// Idle connections, one subscription each: what each costs the server in resident memory.
/// The marginal cost: RSS is read after the first fifth of the connections (which pays the
/// fixed costs: receive buffers touched for the first time, tables' first allocations) and
/// again after all of them; the difference is divided by the connections opened in between.
fn idle(config: &Config) -> io::Result<Report> {
    if config.server_pids.is_empty() {
        return Err(io::Error::other("idle mode needs --server-pid"));
    }
    let pids = config.server_pids.as_slice();
    let total = config.idle_conn_count.max(5);
    let warm = total / 5;
    let start = Instant::now();
    let mut clients = Vec::with_capacity(total);
    let mut rss_warm = 0;
    for index in 0..total {
        if index == warm {
            settle(&mut clients)?;
            rss_warm = server_stats::rss_bytes_sum(pids).unwrap_or(0);
        }
        let mut client = Client::connect(&config.target, None)
            .map_err(|err| io::Error::other(format!("connection {index}: {err}")))?;
        client
            .stream
            .write_all(format!("SUB {}.idle.{index} 1\r\nPING\r\n", config.subject).as_bytes())?;
        client.wait_pong()?;
        clients.push(client);
    }
    let seconds = start.elapsed().as_secs_f64();
    settle(&mut clients)?;
    let rss_after = server_stats::rss_bytes_sum(pids).unwrap_or(0);
    let per_conn = (rss_after as f64 - rss_warm as f64) / (total - warm) as f64;
    drop(clients);
    Ok(Report {
        mode: config.mode.clone(),
        seconds,
        server_rss_bytes: Some(rss_after),
        server_rss_before_bytes: Some(rss_warm),
        server_rss_per_conn_bytes: Some(per_conn),
        conns: total,
        ..Report::default()
    })
}

/// Lets the server finish what it does after a handshake (async INFO, timers), then checks
/// every connection still answers.
fn settle(clients: &mut [Client]) -> io::Result<()> {
    thread::sleep(Duration::from_millis(500));
    for client in clients {
        client.round_trip()?;
    }
    Ok(())
}

/// Prints the bcrypt hash of `--pass` at `--cost` (`$2a$`, as `nats server passwd` writes
/// it), and on stderr what checking a password against it costs here (the median of
/// `CHECKS`): what a server pays per login.
fn bcrypt_hash(config: &Config) -> io::Result<()> {
    const CHECKS: usize = 5;
    let pass = config.bcrypt_password.as_str();
    // `$2a$`, as nats-server's `nats server passwd` (Go's bcrypt) writes it.
    let hash = bcrypt::hash_with_result(pass, config.bcrypt_cost)
        .map_err(io::Error::other)?
        .format_for_version(bcrypt::Version::TwoA);
    let mut costs: Vec<Duration> = (0..CHECKS)
        .map(|_| {
            let began = Instant::now();
            let matches = bcrypt::verify(pass, &hash).unwrap_or(false);
            assert!(matches, "a fresh hash verifies");
            began.elapsed()
        })
        .collect();
    costs.sort();
    eprintln!(
        "bcrypt cost {}: one check takes {:.1} ms here (median of {CHECKS})",
        config.bcrypt_cost,
        costs[CHECKS / 2].as_secs_f64() * 1e3
    );
    println!("{hash}");
    Ok(())
}

/// The loopback ceiling: accept, answer the handshake's PING (and any other), discard the
/// rest. One thread per connection.
fn sink(config: &Config) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", config.sink_port))?;
    eprintln!("natsring-bench sink on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = stream?;
        thread::spawn(move || {
            let _ = discard(stream);
        });
    }
    Ok(())
}

/// Reads and drops everything. A generator client only waits after a PING (the handshake's,
/// the final round trip's), so a PING that needs an answer is always the last thing received:
/// checking the end of the stream after each read is enough, and costs nothing per byte (a
/// scan of every byte held the sink below the servers it is meant to bound).
fn discard(mut stream: TcpStream) -> io::Result<()> {
    const PING: &[u8] = b"PING\r\n";
    stream.set_nodelay(true)?;
    stream.write_all(
        b"INFO {\"server_id\":\"natsring-bench-sink\",\"version\":\"2.11.0\",\"proto\":1,\
          \"headers\":true,\"max_payload\":1048576,\"client_id\":1}\r\n",
    )?;
    let mut buffer = vec![0u8; wire::READ_BYTES];
    // The last bytes received, so a PING split across reads is still seen.
    let mut tail = [0u8; PING.len()];
    loop {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        if read >= PING.len() {
            tail.copy_from_slice(&buffer[read - PING.len()..read]);
        } else {
            tail.copy_within(read.., 0);
            let keep = PING.len() - read;
            tail[keep..].copy_from_slice(&buffer[..read]);
        }
        if tail == PING {
            stream.write_all(b"PONG\r\n")?;
        }
    }
}

fn print_table(report: &Report) {
    let rate = |value: f64| {
        if value >= 1e6 {
            format!("{:.2} M", value / 1e6)
        } else if value >= 1e3 {
            format!("{:.1} k", value / 1e3)
        } else {
            format!("{value:.0} ")
        }
    };
    println!(
        "mode {}  payload {} B  publishers {}  subscribers {}{}{}",
        report.mode,
        report.payload_bytes,
        report.publishers,
        report.subscribers,
        report
            .queue
            .as_ref()
            .map(|queue| format!("  queue {queue}"))
            .unwrap_or_default(),
        if report.table_subs > 0 {
            format!("  table {} subscriptions", report.table_subs)
        } else {
            String::new()
        },
    );
    if report.mode == "idle" {
        println!(
            "{:<12} {} connections with one subscription each, {:.0} B of server RSS per connection",
            "memory",
            report.conns,
            report.server_rss_per_conn_bytes.unwrap_or(0.0)
        );
    } else if report.mode == "handshakes" {
        println!(
            "{:<12} {:>12} connections  {:>10}/s  from {} connectors  in {:.3} s",
            "handshakes",
            report.published,
            rate(report.publish_rate_msgs),
            report.conns,
            report.seconds
        );
    } else {
        println!(
            "{:<12} {:>12} msgs  {:>10}msg/s",
            "published",
            report.published,
            rate(report.publish_rate_msgs)
        );
        println!(
            "{:<12} {:>12} msgs  {:>10}msg/s  {:>10}B/s payload  in {:.3} s",
            "delivered",
            report.delivered,
            rate(report.delivery_rate_msgs),
            rate(report.payload_rate_bytes),
            report.seconds
        );
    }
    if let Some(latency) = &report.latency_us {
        println!(
            "{:<12} p50 {:.1} us  p90 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  max {:.1} us  ({} round trips)",
            if report.mode == "handshakes" { "handshake" } else { "latency" },
            latency.p50, latency.p90, latency.p99, latency.p999, latency.max, latency.count
        );
    }
    if let Some(churn) = &report.churn {
        println!(
            "{:<12} {} of {} connections authenticated ({:.1}/s of {}/s asked), {} refused, {} timed out, {} failed, {} unfinished",
            if churn.tls { "tls churn" } else { "auth churn" },
            churn.authenticated,
            churn.opened,
            churn.authenticated_rate,
            churn.rate_target,
            churn.refused,
            churn.timed_out,
            churn.failed,
            churn.unfinished
        );
        println!(
            "{:<12} p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} answered)",
            "handshake",
            churn.handshake_us.p50 / 1e3,
            churn.handshake_us.p99 / 1e3,
            churn.handshake_us.max / 1e3,
            churn.handshake_us.count
        );
        for (text, count) in &churn.refusals {
            println!("{:<12} {count} x {text}", "refusal");
        }
        if let Some(error) = &churn.error {
            println!("{:<12} first error: {error}", "churn");
        }
    }
    if let (Some(cpu), Some(per_msg)) = (report.server_cpu_seconds, report.server_cpu_ns_per_msg) {
        let unit = if report.mode == "handshakes" {
            "handshake"
        } else {
            "message"
        };
        println!(
            "{:<12} {cpu:.3} s, {per_msg:.1} ns per {unit}",
            "server CPU"
        );
    }
    if let Some(rss) = report.server_rss_bytes {
        println!(
            "{:<12} {:.1} MiB",
            "server RSS",
            rss as f64 / (1 << 20) as f64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Config, String> {
        parse_args(
            &line
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn the_tls_files_are_the_churns_with_tls_churn_and_everyones_with_tls() {
        let pki = certs::Pki::generate();
        let ca = pki.ca_file.to_str().unwrap();
        let churn_only = parse(&format!("req --tls-churn 200 --tls-ca {ca}")).unwrap();
        assert!(churn_only.churn_tls.is_some() && churn_only.target.tls.is_none());
        assert_eq!(churn_only.churn_rate, 200.0);
        let both = parse(&format!("req --tls-churn 200 --tls --tls-ca {ca}")).unwrap();
        assert!(both.churn_tls.is_some() && both.target.tls.is_some());
        let requesters_only = parse(&format!("req --tls-ca {ca}")).unwrap();
        assert!(requesters_only.churn_tls.is_none() && requesters_only.target.tls.is_some());
        let plain = parse("req --auth-churn 100").unwrap();
        assert!(plain.churn_tls.is_none() && plain.target.tls.is_none());
        for refused in [
            format!("req --auth-churn 100 --tls --tls-ca {ca}"),
            "req --tls-churn 200".to_string(),
            format!("req --auth-churn 1 --tls-churn 1 --tls-ca {ca}"),
            format!("pub --tls-churn 200 --tls-ca {ca}"),
        ] {
            assert!(parse(&refused).is_err(), "{refused}");
        }
    }
}
