//! `natsring-asyncbench`: a load generator on the real Rust client (async-nats on tokio, as a
//! user writes it), speaking natsring-bench's command line and JSON report, so
//! scripts/bench.py runs the same scenarios with it as with natsring-bench and the Go client
//! (scripts/gobench/).
//!
//! ```text
//! natsring-asyncbench pub    --size B --msgs N [--pubs P]             --server H:P [--server-pid PID] --json
//! natsring-asyncbench pubsub --size B --msgs N [--subs S] [--queue Q] --server H:P [--server-pid PID] --json
//! natsring-asyncbench req    --size B --msgs N [--rate R]             --server H:P [--server-pid PID] --json
//! ```
//!
//! pub: P publishers share N messages; the run ends when each publisher's last message has
//! made a round trip through the server (async-nats 0.51's `flush` writes its buffer and sends
//! no PING, so it proves nothing reached the server). pubsub: S subscribers (a queue group with
//! --queue), one publisher; the run ends when every expected delivery arrived (or 30 s passed
//! without progress). req: one requester, one responder, N sequential round trips (R a second
//! with --rate), latency in microseconds. A tokio runtime with the default number of workers
//! (one per CPU the process may run on). Server CPU from /proc/PID/task/*/schedstat around the
//! measured part; the client's own the same way.

#[path = "../src/bin/natsring-bench/server_stats.rs"]
#[allow(dead_code)] // rss_bytes: natsring-bench reports memory, this one does not
mod server_stats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    count: u64,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    mode: String,
    client: String,
    payload_bytes: usize,
    publishers: usize,
    subscribers: usize,
    queue: Option<String>,
    published: u64,
    delivered: u64,
    expected_deliveries: u64,
    seconds: f64,
    publish_rate_msgs: f64,
    delivery_rate_msgs: f64,
    payload_rate_bytes: f64,
    server_cpu_seconds: Option<f64>,
    server_cpu_ns_per_msg: Option<f64>,
    client_cpu_ns_per_msg: Option<f64>,
    latency_us: Option<Latency>,
}

struct Config {
    mode: String,
    size: usize,
    msgs: u64,
    pubs: usize,
    subs: usize,
    queue: Option<String>,
    rate: f64,
    server: String,
    server_pid: Option<u32>,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn parse(args: &[String]) -> Result<Config, String> {
    let mode = args
        .first()
        .cloned()
        .ok_or("usage: natsring-asyncbench pub|pubsub|req ...")?;
    if !["pub", "pubsub", "req"].contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?} (pub, pubsub, req)"));
    }
    let mut config = Config {
        mode,
        size: 16,
        msgs: 1_000_000,
        pubs: 1,
        subs: 1,
        queue: None,
        rate: 0.0,
        server: "127.0.0.1:4222".into(),
        server_pid: None,
    };
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().cloned().ok_or(format!("{flag} needs a value"));
        fn number<T: std::str::FromStr>(flag: &str, text: String) -> Result<T, String> {
            text.parse()
                .map_err(|_| format!("{flag}: not a number: {text:?}"))
        }
        match flag.as_str() {
            "--size" => config.size = number(flag, value()?)?,
            "--msgs" => config.msgs = number::<u64>(flag, value()?)?.max(1),
            "--pubs" => config.pubs = number::<usize>(flag, value()?)?.max(1),
            "--subs" => config.subs = number::<usize>(flag, value()?)?.max(1),
            "--queue" => config.queue = Some(value()?),
            "--rate" => config.rate = number(flag, value()?)?,
            "--server" => config.server = value()?,
            "--server-pid" => config.server_pid = Some(number(flag, value()?)?),
            "--json" => {}
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(config)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("natsring-asyncbench: {message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run(&config)) {
        Ok(report) => println!("{}", serde_json::to_string(&report).expect("serializes")),
        Err(err) => {
            eprintln!("natsring-asyncbench: FAILED: {err}");
            std::process::exit(1);
        }
    }
}

/// Server and client CPU (ns) now.
fn cpu_now(config: &Config) -> (Option<u64>, Option<u64>) {
    (
        config.server_pid.and_then(server_stats::cpu_ns),
        server_stats::cpu_ns(std::process::id()),
    )
}

async fn connect(config: &Config) -> Result<async_nats::Client, Failure> {
    // A subscription's channel holds this many messages: at the default (65,536) a subscriber
    // behind a publisher on the same runtime drops messages (the client's slow consumer), and
    // the run would measure the drops.
    Ok(async_nats::ConnectOptions::new()
        .subscription_capacity(1 << 22)
        .connect(format!("nats://{}", config.server))
        .await?)
}

/// A round trip through the server on `client`'s connection: everything it published before
/// has been handled once this returns.
async fn sync(client: &async_nats::Client) -> Result<(), Failure> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, Bytes::new()).await?;
    client.flush().await?;
    tokio::time::timeout(Duration::from_secs(60), sub.next())
        .await?
        .ok_or("subscription ended")?;
    Ok(())
}

async fn run(config: &Config) -> Result<Report, Failure> {
    let payload = Bytes::from(
        (0..config.size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<_>>(),
    );
    let mut report = Report {
        mode: config.mode.clone(),
        client: "async-nats 0.51".into(),
        payload_bytes: config.size,
        queue: config.queue.clone(),
        ..Report::default()
    };
    let (before, after, seconds);
    match config.mode.as_str() {
        "pub" => {
            report.publishers = config.pubs;
            let mut clients = Vec::new();
            for _ in 0..config.pubs {
                clients.push(connect(config).await?);
            }
            let each = config.msgs / config.pubs as u64;
            before = cpu_now(config);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for client in clients {
                let payload = payload.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..each {
                        client.publish("bench", payload.clone()).await?;
                    }
                    sync(&client).await
                }));
            }
            for task in tasks {
                task.await??;
            }
            seconds = start.elapsed().as_secs_f64();
            after = cpu_now(config);
            report.published = each * config.pubs as u64;
        }
        "pubsub" => {
            report.publishers = 1;
            report.subscribers = config.subs;
            let expected = if config.queue.is_some() {
                config.msgs
            } else {
                config.msgs * config.subs as u64
            };
            let delivered = Arc::new(AtomicU64::new(0));
            let mut readers = Vec::new();
            for _ in 0..config.subs {
                let client = connect(config).await?;
                let mut sub = match &config.queue {
                    Some(queue) => client.queue_subscribe("bench", queue.clone()).await?,
                    None => client.subscribe("bench").await?,
                };
                sync(&client).await?;
                let delivered = Arc::clone(&delivered);
                readers.push(tokio::spawn(async move {
                    while sub.next().await.is_some() {
                        if delivered.fetch_add(1, Ordering::Relaxed) + 1 >= expected {
                            break;
                        }
                    }
                    drop(client);
                }));
            }
            let publisher = connect(config).await?;
            before = cpu_now(config);
            let start = Instant::now();
            for _ in 0..config.msgs {
                publisher.publish("bench", payload.clone()).await?;
            }
            publisher.flush().await?;
            let mut last = (0, Instant::now());
            loop {
                let now = delivered.load(Ordering::Relaxed);
                if now >= expected {
                    break;
                }
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(30) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            seconds = start.elapsed().as_secs_f64();
            after = cpu_now(config);
            for reader in &readers {
                reader.abort();
            }
            report.published = config.msgs;
            report.delivered = delivered.load(Ordering::Relaxed).min(expected);
            report.expected_deliveries = expected;
        }
        _ => {
            report.publishers = 1;
            report.subscribers = 1;
            let responder = connect(config).await?;
            let mut requests = responder.subscribe("bench.req").await?;
            sync(&responder).await?;
            let answering = tokio::spawn(async move {
                while let Some(request) = requests.next().await {
                    if let Some(reply) = request.reply {
                        let _ = responder.publish(reply, request.payload).await;
                    }
                }
            });
            let requester = connect(config).await?;
            let mut samples = Vec::with_capacity(config.msgs as usize);
            let interval = (config.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / config.rate));
            before = cpu_now(config);
            let start = Instant::now();
            for round in 0..config.msgs {
                if let Some(interval) = interval {
                    let due = start + interval * round as u32;
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                requester.request("bench.req", payload.clone()).await?;
                samples.push(sent.elapsed().as_nanos() as f64 / 1000.0);
            }
            seconds = start.elapsed().as_secs_f64();
            after = cpu_now(config);
            answering.abort();
            samples.sort_by(f64::total_cmp);
            let at = |q: f64| samples[(q * (samples.len() - 1) as f64) as usize];
            report.latency_us = Some(Latency {
                p50: at(0.5),
                p90: at(0.9),
                p99: at(0.99),
                p999: at(0.999),
                max: samples[samples.len() - 1],
                count: samples.len() as u64,
            });
            report.published = config.msgs;
            report.delivered = config.msgs;
            report.expected_deliveries = config.msgs;
        }
    }
    report.seconds = seconds;
    report.publish_rate_msgs = report.published as f64 / seconds;
    report.delivery_rate_msgs = report.delivered as f64 / seconds;
    let counted = if report.delivered > 0 {
        report.delivered
    } else {
        report.published
    };
    report.payload_rate_bytes = counted as f64 * config.size as f64 / seconds;
    if let ((Some(server_before), client_before), (Some(server_after), client_after)) =
        (before, after)
    {
        let cpu = server_after.saturating_sub(server_before) as f64;
        report.server_cpu_seconds = Some(cpu / 1e9);
        report.server_cpu_ns_per_msg = Some(cpu / counted.max(1) as f64);
        if let (Some(b), Some(a)) = (client_before, client_after) {
            report.client_cpu_ns_per_msg =
                Some(a.saturating_sub(b) as f64 / report.published.max(1) as f64);
        }
    }
    Ok(report)
}
