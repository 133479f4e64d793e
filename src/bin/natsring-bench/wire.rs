//! The generator's side of the NATS wire: connecting, pre-built PUB runs, and counting MSG
//! frames over large reads without creating anything per message.
//!
//! A subscriber's frames all have the same shape in a throughput run (same subject, sid and
//! payload size), so [`MsgCounter`] first checks whether the next bytes are exactly the
//! expected frame (a prefix compare and the trailing `\r\n`) and skips it by arithmetic; any
//! other frame (a PING, a different MSG) goes through a general path that finds the end of
//! the control line with memchr and skips the payload by its announced length.
//!
//! Connections read and write through [`Stream`]: plain TCP, or TLS (`tls.rs`) when the
//! target says so.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub use crate::tls::{Stream, Tls};

/// Bytes a publisher hands the kernel per write at least (a run of whole PUB frames, never
/// fewer than `PUBLISH_WRITE_FRAMES_MIN`): one 64 KiB frame per write held a publisher to
/// about 1.5 GB/s over loopback, four or more per write reach 3.5-6 GB/s.
pub const PUBLISH_WRITE_BYTES: usize = 256 * 1024;
/// Frames per publisher write at least (matters for large payloads).
pub const PUBLISH_WRITE_FRAMES_MIN: usize = 4;
/// Bytes a reader asks the kernel for per read.
pub const READ_BYTES: usize = 1024 * 1024;
/// How many connection attempts placing a connection on a chosen shard may take.
const PLACEMENT_ATTEMPTS_MAX: usize = 2000;

/// Where the server is, how to place connections on its shards, and who they say they are.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: String,
    /// The server's shard count, when connections are to be placed on chosen shards.
    pub shard_count: Option<usize>,
    /// What every connection's CONNECT presents (`--user`, `--pass`); none: no credentials.
    pub credentials: Option<Credentials>,
    /// How connections speak TLS (`--tls`); none: plain TCP.
    pub tls: Option<Tls>,
}

/// A user name and password, as a CONNECT carries them (`user`, `pass`).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
    pub pass: String,
}

/// The CONNECT and PING a generator connection opens with, once it has the INFO. With
/// credentials the CONNECT carries `user` and `pass`; without, it is the same bytes as always.
pub fn connect_and_ping(credentials: Option<&Credentials>) -> Vec<u8> {
    let mut bytes = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\
        \"no_responders\":true,\"protocol\":1,\"echo\":true,\"name\":\"natsring-bench\""
        .to_vec();
    if let Some(credentials) = credentials {
        let json = |text: &str| serde_json::to_vec(text).expect("a string serializes");
        bytes.extend_from_slice(b",\"user\":");
        bytes.extend_from_slice(&json(&credentials.user));
        bytes.extend_from_slice(b",\"pass\":");
        bytes.extend_from_slice(&json(&credentials.pass));
    }
    bytes.extend_from_slice(b"}\r\nPING\r\n");
    bytes
}

/// A connected, handshaken client connection.
pub struct Client {
    pub stream: Stream,
    pub client_id: u64,
    /// Bytes read past the handshake's PONG.
    pub leftover: Vec<u8>,
}

impl Client {
    /// Connects, sends CONNECT and PING, and waits for the PONG. With `shard` and a target
    /// shard count, reconnects until the server's `client_id` says the connection landed on
    /// that shard (natsring numbers client ids so that `(id - 1) % shards` is the shard).
    pub fn connect(target: &Target, shard: Option<usize>) -> io::Result<Client> {
        for _ in 0..PLACEMENT_ATTEMPTS_MAX {
            let client = Client::connect_once(target)?;
            match (shard, target.shard_count) {
                (Some(wanted), Some(count)) if count > 0 => {
                    if (client.client_id.saturating_sub(1) % count as u64) as usize == wanted {
                        return Ok(client);
                    }
                }
                _ => return Ok(client),
            }
        }
        Err(io::Error::other(format!(
            "no connection landed on shard {shard:?} in {PLACEMENT_ATTEMPTS_MAX} attempts"
        )))
    }

    fn connect_once(target: &Target) -> io::Result<Client> {
        let socket = TcpStream::connect(&target.address)?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(Duration::from_secs(10)))?;
        let (mut stream, info, leftover) = match &target.tls {
            None => {
                let mut stream = Stream::Plain(socket);
                let (info, leftover) = read_info(&mut stream)?;
                (stream, info, leftover)
            }
            Some(tls) if tls.first => {
                let mut stream = tls.handshake(socket)?;
                let (info, leftover) = read_info(&mut stream)?;
                (stream, info, leftover)
            }
            Some(tls) => {
                let mut socket = socket;
                let (info, leftover) = read_info(&mut socket)?;
                if !info_offers_tls(&info) {
                    return Err(io::Error::other(
                        "the server's INFO offers no TLS (no tls_required, no tls_available)",
                    ));
                }
                if !leftover.is_empty() {
                    return Err(io::Error::other(
                        "the server sent more than its INFO before the TLS handshake",
                    ));
                }
                (tls.handshake(socket)?, info, leftover)
            }
        };
        let client_id = info_client_id(&info).unwrap_or(0);
        stream.write_all(&connect_and_ping(target.credentials.as_ref()))?;
        let mut client = Client {
            stream,
            client_id,
            leftover,
        };
        client.wait_pong()?;
        Ok(client)
    }

    /// Reads until a PONG, answering PINGs; anything else before it is an error.
    pub fn wait_pong(&mut self) -> io::Result<()> {
        let mut buffer = std::mem::take(&mut self.leftover);
        let mut start = 0;
        loop {
            while let Some(end) = memchr::memchr(b'\n', &buffer[start..]) {
                let line = &buffer[start..start + end + 1];
                start += end + 1;
                if line.starts_with(b"PONG") {
                    self.leftover = buffer[start..].to_vec();
                    return Ok(());
                } else if line.starts_with(b"PING") {
                    self.stream.write_all(b"PONG\r\n")?;
                } else if line.starts_with(b"+OK") || line.starts_with(b"INFO") {
                } else {
                    return Err(io::Error::other(format!(
                        "unexpected while waiting for PONG: {:?}",
                        String::from_utf8_lossy(line)
                    )));
                }
            }
            buffer.drain(..start);
            start = 0;
            let before = buffer.len();
            buffer.resize(before + 64 * 1024, 0);
            let read = self.stream.read(&mut buffer[before..])?;
            buffer.truncate(before + read);
            if read == 0 {
                return Err(io::Error::other("server closed while waiting for PONG"));
            }
        }
    }

    /// PING and wait for the PONG: everything sent before has been processed by the server.
    pub fn round_trip(&mut self) -> io::Result<()> {
        self.stream.write_all(b"PING\r\n")?;
        self.wait_pong()
    }
}

/// Reads the server's INFO line: its JSON object, and the bytes read past it.
pub fn read_info(stream: &mut impl Read) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buffer = vec![0u8; 4096];
    let mut filled = 0;
    let line_end = loop {
        if let Some(end) = memchr::memchr(b'\n', &buffer[..filled]) {
            break end;
        }
        if filled == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        let read = stream.read(&mut buffer[filled..])?;
        if read == 0 {
            return Err(io::Error::other("server closed before INFO"));
        }
        filled += read;
    };
    let info = &buffer[..line_end];
    let Some(json) = info.strip_prefix(b"INFO ") else {
        return Err(io::Error::other(format!(
            "expected INFO, got {:?}",
            String::from_utf8_lossy(info)
        )));
    };
    Ok((json.to_vec(), buffer[line_end + 1..filled].to_vec()))
}

/// Whether an INFO JSON object says the server takes TLS.
fn info_offers_tls(json: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return false;
    };
    ["tls_required", "tls_available"]
        .iter()
        .any(|field| value.get(field).and_then(|flag| flag.as_bool()) == Some(true))
}

/// The `client_id` field of an INFO JSON object.
fn info_client_id(json: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    value.get("client_id")?.as_u64()
}

/// `count` PUB frames to `subject` (with optional reply) carrying `payload`, as one byte run.
pub fn pub_frames(subject: &str, reply: Option<&str>, payload: &[u8], count: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 64);
    frame.extend_from_slice(b"PUB ");
    frame.extend_from_slice(subject.as_bytes());
    frame.push(b' ');
    if let Some(reply) = reply {
        frame.extend_from_slice(reply.as_bytes());
        frame.push(b' ');
    }
    frame.extend_from_slice(payload.len().to_string().as_bytes());
    frame.extend_from_slice(b"\r\n");
    frame.extend_from_slice(payload);
    frame.extend_from_slice(b"\r\n");
    frame.repeat(count)
}

/// Length in bytes of one PUB frame as [`pub_frames`] writes it.
pub fn pub_frame_len(subject: &str, reply: Option<&str>, payload_size: usize) -> usize {
    pub_frames(subject, reply, &vec![0; payload_size], 1).len()
}

/// The payload every generator message carries.
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// What a read taught the counter.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub messages: u64,
    pub pongs: u64,
}

/// Counts MSG/HMSG frames in a byte stream, answering PINGs. See the module docs.
pub struct MsgCounter {
    /// The exact bytes of an expected frame's control line, e.g. `MSG bench 1 16\r\n`.
    expected_head: Vec<u8>,
    /// Length of a whole expected frame (control line, payload, `\r\n`).
    expected_frame_len: usize,
    buffer: Vec<u8>,
    /// Bytes of `buffer` holding unprocessed input, from index 0.
    filled: usize,
}

impl MsgCounter {
    pub fn new(subject: &str, sid: &str, payload_size: usize) -> MsgCounter {
        let expected_head = format!("MSG {subject} {sid} {payload_size}\r\n").into_bytes();
        MsgCounter {
            expected_frame_len: expected_head.len() + payload_size + 2,
            expected_head,
            buffer: vec![0; READ_BYTES],
            filled: 0,
        }
    }

    /// Hands the counter bytes already read (a handshake's leftover).
    pub fn prime(&mut self, bytes: &[u8]) {
        self.ensure_room(bytes.len());
        self.buffer[self.filled..self.filled + bytes.len()].copy_from_slice(bytes);
        self.filled += bytes.len();
    }

    /// One read from `stream`, then counts every whole frame. Answers PINGs on `stream`.
    /// Returns Ok(None) when the server closed the connection.
    pub fn read_and_count(&mut self, stream: &mut Stream) -> io::Result<Option<Counted>> {
        self.ensure_room(READ_BYTES / 4);
        let read = match stream.read(&mut self.buffer[self.filled..]) {
            Ok(0) => return Ok(None),
            Ok(read) => read,
            Err(err)
                if err.kind() == io::ErrorKind::WouldBlock
                    || err.kind() == io::ErrorKind::TimedOut =>
            {
                0
            }
            Err(err) => return Err(err),
        };
        self.filled += read;
        self.count(stream).map(Some)
    }

    /// Counts the whole frames buffered so far, keeping a trailing partial frame.
    pub fn count(&mut self, stream: &mut impl Write) -> io::Result<Counted> {
        let mut counted = Counted::default();
        let mut position = 0;
        let head = self.expected_head.as_slice();
        let frame_len = self.expected_frame_len;
        loop {
            let rest = &self.buffer[position..self.filled];
            // Fast path: the expected frame, skipped by arithmetic.
            if rest.len() >= frame_len
                && rest.starts_with(head)
                && rest[frame_len - 2..frame_len] == *b"\r\n"
            {
                counted.messages += 1;
                position += frame_len;
                continue;
            }
            let Some(line_end) = memchr::memchr(b'\n', rest) else {
                break;
            };
            let line = &rest[..line_end + 1];
            if line.starts_with(b"MSG ") || line.starts_with(b"HMSG ") {
                let total = frame_total_len(line)?;
                if rest.len() < total {
                    break;
                }
                counted.messages += 1;
                position += total;
            } else if line.starts_with(b"PING") {
                stream.write_all(b"PONG\r\n")?;
                position += line.len();
            } else if line.starts_with(b"PONG") {
                counted.pongs += 1;
                position += line.len();
            } else if line.starts_with(b"+OK") || line.starts_with(b"INFO") {
                position += line.len();
            } else {
                return Err(io::Error::other(format!(
                    "server sent {:?}",
                    String::from_utf8_lossy(line).trim_end()
                )));
            }
        }
        self.buffer.copy_within(position..self.filled, 0);
        self.filled -= position;
        Ok(counted)
    }

    /// The bytes read but not counted yet (a trailing partial frame), for another reader of
    /// the same connection.
    pub fn into_unread(mut self) -> Vec<u8> {
        self.buffer.truncate(self.filled);
        self.buffer
    }

    fn ensure_room(&mut self, room: usize) {
        if self.buffer.len() - self.filled < room {
            let wanted = (self.filled + room).max(self.buffer.len() * 2);
            self.buffer.resize(wanted, 0);
        }
    }
}

/// Length of a whole MSG/HMSG frame from its control line (which ends with `\n`).
fn frame_total_len(line: &[u8]) -> io::Result<usize> {
    let trimmed = line
        .strip_suffix(b"\r\n")
        .ok_or_else(|| io::Error::other("control line without \\r\\n"))?;
    let last_space = memchr::memrchr(b' ', trimmed).ok_or_else(|| io::Error::other("bad MSG"))?;
    let size: usize = std::str::from_utf8(&trimmed[last_space + 1..])
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| io::Error::other("bad MSG size"))?;
    Ok(line.len() + size + 2)
}

/// Pieces of a MSG frame's control line a responder needs.
pub struct MsgHead<'a> {
    pub reply: Option<&'a [u8]>,
    /// Whole frame length.
    pub frame_len: usize,
}

/// Parses the MSG at the start of `bytes` if it is whole.
pub fn msg_head(bytes: &[u8]) -> io::Result<Option<MsgHead<'_>>> {
    let Some(line_end) = memchr::memchr(b'\n', bytes) else {
        return Ok(None);
    };
    let line = &bytes[..line_end + 1];
    let frame_len = frame_total_len(line)?;
    if bytes.len() < frame_len {
        return Ok(None);
    }
    let fields: Vec<&[u8]> = line[..line.len() - 2]
        .split(|&byte| byte == b' ')
        .filter(|field| !field.is_empty())
        .collect();
    let reply = match fields.len() {
        5 => Some(fields[3]),
        _ => None,
    };
    Ok(Some(MsgHead { reply, frame_len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_length_from_control_line() {
        assert_eq!(frame_total_len(b"MSG a 1 5\r\n").unwrap(), 11 + 5 + 2);
        assert_eq!(frame_total_len(b"HMSG a 1 r 3 5\r\n").unwrap(), 16 + 5 + 2);
        assert!(frame_total_len(b"MSG a 1 x\r\n").is_err());
    }

    #[test]
    fn connect_carries_credentials_only_when_given() {
        assert_eq!(
            connect_and_ping(None),
            b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\
              \"no_responders\":true,\"protocol\":1,\"echo\":true,\"name\":\"natsring-bench\"}\r\n\
              PING\r\n"
        );
        let credentials = Credentials {
            user: "steady".into(),
            pass: "a\"b\\c".into(),
        };
        let bytes = connect_and_ping(Some(&credentials));
        let line = bytes.strip_suffix(b"\r\nPING\r\n").unwrap();
        let json: serde_json::Value = serde_json::from_slice(&line[8..]).unwrap();
        assert_eq!(json["user"], "steady");
        assert_eq!(json["pass"], "a\"b\\c");
        assert_eq!(json["name"], "natsring-bench");
    }

    #[test]
    fn info_is_read_with_what_follows_and_says_whether_tls_is_offered() {
        let mut input: &[u8] = b"INFO {\"client_id\":7,\"tls_required\":true}\r\nPING\r\n";
        let (info, leftover) = read_info(&mut input).unwrap();
        assert_eq!(info_client_id(&info), Some(7));
        assert!(info_offers_tls(&info));
        assert_eq!(leftover, b"PING\r\n");
        assert!(info_offers_tls(b"{\"tls_available\":true}"));
        assert!(!info_offers_tls(b"{\"tls_required\":false}"));
        assert!(!info_offers_tls(b"{}"));
        assert!(read_info(&mut &b"-ERR 'x'\r\n"[..]).is_err());
    }

    #[test]
    fn pub_frames_repeat() {
        let run = pub_frames("s", Some("r"), b"hi", 2);
        assert_eq!(run, b"PUB s r 2\r\nhi\r\nPUB s r 2\r\nhi\r\n");
        assert_eq!(pub_frame_len("s", Some("r"), 2), run.len() / 2);
    }

    #[test]
    fn counter_counts_expected_and_other_frames_and_answers_pings() {
        let mut counter = MsgCounter::new("s", "1", 2);
        let mut answers = Vec::new();
        counter.prime(b"MSG s 1 2\r\nhi\r\nPING\r\nMSG s 1 r 3\r\nabc\r\nHMSG s 1 2 4\r\nhhab\r\nMSG s 1 2\r\nh");
        let counted = counter.count(&mut answers).unwrap();
        assert_eq!(counted.messages, 3);
        assert_eq!(answers, b"PONG\r\n");
        counter.prime(b"i\r\nPONG\r\n");
        let counted = counter.count(&mut answers).unwrap();
        assert_eq!(
            counted,
            Counted {
                messages: 1,
                pongs: 1
            }
        );
        counter.prime(b"-ERR 'x'\r\n");
        assert!(counter.count(&mut answers).is_err());
    }

    #[test]
    fn msg_head_reply() {
        let head = msg_head(b"MSG s 1 _INBOX.x 2\r\nhi\r\n").unwrap().unwrap();
        assert_eq!(head.reply, Some(&b"_INBOX.x"[..]));
        assert_eq!(head.frame_len, 24);
        assert!(msg_head(b"MSG s 1 2\r\nh").unwrap().is_none());
    }
}
