//! Parser and writer throughput, each beside a baseline that does the least the job needs.
//!
//! - `parse`: [`Parser::parse`] over a pre-built stream of `PUB` frames, one call per frame, the
//!   way a connection drains its receive buffer. Baseline `parse_baseline`: memchr finds each
//!   `\n`, the payload length is read naively from the last argument, the payload and its
//!   `\r\n` are skipped. No op name, subject, size limit or trailer check. The gap between the
//!   two is what the parser's checks cost.
//! - `write_msg`: [`writer::write_msg`] of the same number of `MSG` frames into a reused buffer
//!   (subject, sid and payload given; the control line is written, its length digits too).
//!   Baseline `write_msg_baseline`: `extend_from_slice` of the same frame bytes, pre-formatted:
//!   a memcpy of the same output length.
//! - `write_hmsg`: [`writer::write_hmsg`] likewise, with a small header block
//!   (`NATS/1.0\r\nA: B\r\n\r\n`, 18 bytes) before the payload. Baseline
//!   `write_hmsg_baseline`: the memcpy of the same pre-formatted `HMSG` frames.
//!
//! Each is run at payload sizes 16 B, 128 B and 4 KiB, over about 64 KiB of frames per
//! iteration. Two throughputs are reported: bytes (every byte of the stream, control lines and
//! headers included) and items (frames: ops parsed or messages written). The parser and its
//! baseline skip a payload by its announced length without reading it, so at 4 KiB their
//! bytes/s counts bytes skipped, far above memory bandwidth; items/s is the figure to compare.
//!
//! Run: `cargo bench --bench parser` (divan defaults; `-- parse` or `-- write_hmsg` to pick a
//! group).

use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use memchr::memchr;
use natsring::proto::writer;
use natsring::proto::{Message, Op, Parser, Step};

fn main() {
    divan::main();
}

/// Payload sizes measured.
const PAYLOAD_SIZES: [usize; 3] = [16, 128, 4096];
/// Bytes of frames per stream: enough that per-iteration overhead vanishes, small enough to
/// stay in L2 (so the parser is measured, not memory).
const STREAM_BYTES_TARGET: usize = 64 * 1024;
const SUBJECT: &[u8] = b"orders.eu.created";
const SID: &[u8] = b"17";
/// A small, realistic header block: the version line and one header.
const HEADERS: &[u8] = b"NATS/1.0\r\nA: B\r\n\r\n";
/// nats-server's defaults.
const MAX_PAYLOAD: u32 = 1024 * 1024;
const MAX_CONTROL_LINE: u32 = 4096;

/// Frames per stream for a payload size (at least 16).
fn frame_count(payload_size: usize) -> usize {
    (STREAM_BYTES_TARGET / (payload_size + 32)).max(16)
}

/// `frame_count` frames of `PUB <subject> <size>\r\n<payload>\r\n`.
fn pub_stream(payload_size: usize) -> (Vec<u8>, usize) {
    let frames = frame_count(payload_size);
    let payload = vec![b'x'; payload_size];
    let mut stream = Vec::new();
    for _ in 0..frames {
        stream.extend_from_slice(b"PUB ");
        stream.extend_from_slice(SUBJECT);
        stream.extend_from_slice(format!(" {payload_size}\r\n").as_bytes());
        stream.extend_from_slice(&payload);
        stream.extend_from_slice(b"\r\n");
    }
    (stream, frames)
}

#[divan::bench(args = PAYLOAD_SIZES)]
fn parse(bencher: Bencher, payload_size: usize) {
    let (stream, frames) = pub_stream(payload_size);
    let parser = Parser::new(MAX_PAYLOAD, MAX_CONTROL_LINE);
    // Check once, outside the timed loop, that every frame parses as a PUB.
    assert_eq!(parse_all(&parser, &stream), frames);
    bencher
        .counter(BytesCount::new(stream.len()))
        .counter(ItemsCount::new(frames))
        .bench_local(|| parse_all(&parser, black_box(&stream)));
}

/// Parses the whole stream one op at a time; returns the number of PUBs.
fn parse_all(parser: &Parser, stream: &[u8]) -> usize {
    let mut rest = stream;
    let mut pubs = 0;
    while !rest.is_empty() {
        match parser.parse(rest) {
            Step::Op(op, consumed) => {
                if let Op::Pub(Message { payload, .. }) = black_box(op) {
                    black_box(payload);
                    pubs += 1;
                }
                rest = &rest[consumed..];
            }
            step => panic!("benchmark stream must parse whole: {step:?}"),
        }
    }
    pubs
}

#[divan::bench(args = PAYLOAD_SIZES)]
fn parse_baseline(bencher: Bencher, payload_size: usize) {
    let (stream, frames) = pub_stream(payload_size);
    assert_eq!(scan_all(&stream), frames);
    bencher
        .counter(BytesCount::new(stream.len()))
        .counter(ItemsCount::new(frames))
        .bench_local(|| scan_all(black_box(&stream)));
}

/// The floor: find `\n`, read the digits before `\r\n` as the length, skip payload + `\r\n`.
fn scan_all(stream: &[u8]) -> usize {
    let mut rest = stream;
    let mut frames = 0;
    while let Some(newline) = memchr(b'\n', rest) {
        let line = &rest[..newline - 1]; // without "\r"
        let digits_start = line
            .iter()
            .rposition(|&byte| byte == b' ')
            .map_or(0, |space| space + 1);
        let size = line[digits_start..]
            .iter()
            .fold(0usize, |size, &digit| size * 10 + usize::from(digit - b'0'));
        let body_start = newline + 1;
        black_box(&rest[body_start..body_start + size]);
        rest = &rest[body_start + size + 2..];
        frames += 1;
    }
    frames
}

/// Runs `write` (one frame carrying `payload` per call) a frame count's worth of times per
/// iteration, counting the frames and their bytes.
fn bench_writer(bencher: Bencher, payload_size: usize, write: impl Fn(&mut Vec<u8>, &[u8])) {
    let frames = frame_count(payload_size);
    let payload = vec![b'x'; payload_size];
    let mut frame = Vec::new();
    write(&mut frame, &payload);
    let mut out = Vec::with_capacity(frame.len() * frames);
    bencher
        .counter(BytesCount::new(frame.len() * frames))
        .counter(ItemsCount::new(frames))
        .bench_local(|| {
            out.clear();
            for _ in 0..frames {
                write(&mut out, black_box(&payload));
            }
            black_box(out.len())
        });
}

/// The baseline for a writer: copying the frame it writes, already formatted.
fn bench_copy(bencher: Bencher, payload_size: usize, write: impl Fn(&mut Vec<u8>, &[u8])) {
    let mut frame = Vec::new();
    write(&mut frame, &vec![b'x'; payload_size]);
    bench_writer(bencher, payload_size, |out, _| {
        out.extend_from_slice(black_box(&frame))
    });
}

fn msg(out: &mut Vec<u8>, payload: &[u8]) {
    writer::write_msg(out, black_box(SUBJECT), black_box(SID), None, payload);
}

fn hmsg(out: &mut Vec<u8>, payload: &[u8]) {
    writer::write_hmsg(
        out,
        black_box(SUBJECT),
        black_box(SID),
        None,
        black_box(HEADERS),
        payload,
    );
}

#[divan::bench(args = PAYLOAD_SIZES)]
fn write_msg(bencher: Bencher, payload_size: usize) {
    bench_writer(bencher, payload_size, msg);
}

#[divan::bench(args = PAYLOAD_SIZES)]
fn write_msg_baseline(bencher: Bencher, payload_size: usize) {
    bench_copy(bencher, payload_size, msg);
}

/// The fan-out path: the MSG rendered once into a template, then written per subscriber with
/// its sid (`MsgTemplate::write`), against `write_msg` above.
#[divan::bench(args = PAYLOAD_SIZES)]
fn write_msg_from_template(bencher: Bencher, payload_size: usize) {
    let mut template = writer::MsgTemplate::default();
    template.render(SUBJECT, None, None, &vec![b'x'; payload_size]);
    bench_writer(bencher, payload_size, |out, _| {
        template.write(out, black_box(SID))
    });
}

#[divan::bench(args = PAYLOAD_SIZES)]
fn write_hmsg(bencher: Bencher, payload_size: usize) {
    bench_writer(bencher, payload_size, hmsg);
}

#[divan::bench(args = PAYLOAD_SIZES)]
fn write_hmsg_baseline(bencher: Bencher, payload_size: usize) {
    bench_copy(bencher, payload_size, hmsg);
}
