//! `msg_writer`: what the server writes to a subscriber reads back as the message it sent,
//! along the path a message takes: cross-shard frame (`route::frame`) -> `MSG`/`HMSG` writer.
//!
//! The server's parser reads client operations only (it has no `MSG` state, and `HMSG` from a
//! client is nats-server's odd empty publish), so the messages are read back by [`ClientReader`]
//! below: a small, strict client-side reader written from PROTOCOL.md §1.2, the way a client
//! library reads its socket (control line to `\r\n`, fields split on one space, sizes in decimal,
//! then exactly `<size>` bytes and `\r\n`). A round trip through an independent reader is the
//! check that matters to clients: the bytes frame correctly in a stream, whatever the payload
//! holds (`\r\n`, `MSG ...`), and the sizes are right. The bytes are also compared with a plain
//! reference formatter (`format!`-style concatenation with `u64::to_string`), which pins every
//! byte, including for fields a client could not read back (see below).
//!
//! Input layout:
//! - byte 0: bits 0..=2 the number of split points (0-7) for reading the stream back;
//! - one little-endian `u16` per split point, taken modulo (stream length + 1);
//! - a `u64` written with `write_u64` and compared with `to_string`;
//! - then messages, until the input ends ([`MESSAGES_MAX`] at most), each: a flags byte (bit 0
//!   a reply, bit 1 headers, bit 2 a queue route, bits 3..=5 the number of frame targets),
//!   then subject, sid, reply, headers and payload, each as a length byte and that many bytes
//!   (the payload's length is a `u16`).
//!
//! Checked, per message:
//! - the frame encoded for another shard decodes to the same parts, route and targets; every
//!   prefix shorter by 1, by the payload, by half, and every one up to 64 bytes,
//!   fails to decode, and so does one byte more; decoding the raw input never panics;
//! - the same message as a one-target frame (when its subject and reply fit one) decodes to
//!   the same parts and target, as that kind, and a cut into its fixed part does not decode;
//!   the full frame decodes as a full one through the same `decode`;
//! - `write_msg`/`write_hmsg` (from the decoded parts, appended to the stream so far) write
//!   exactly the reference bytes and `msg_len` bytes, and so does a `MsgTemplate` (fan-out's
//!   render-once writer, one kept across the input) for the message's sid and two others;
//! - the whole stream, read back in the split points' chunks (carry + append), gives every
//!   message back in order (subject, sid, reply, headers, payload) and nothing left over.
//!
//! Domain of the read-back: a client splits the control line on blanks, so subject, sid and
//! reply must be non-empty and free of space, tab, CR and LF. The server never writes other
//! ones (its parser splits PUB and SUB arguments on those bytes), so the fuzzer's fields are
//! mapped into that domain for the stream; the reference comparison also runs on the raw
//! fields.

use natsring::proto::writer::{msg_len, write_hmsg, write_msg, write_u64, MsgTemplate};
use natsring::proto::Message as Parts;
use natsring::xshard::frame::{
    decode, encode, encode_one_target, encoded_len, one_target_len, Decoded, Frame, QueueRoute,
    Target,
};

use crate::Cursor;

/// Messages per input, so a long input cannot make one run slow.
pub const MESSAGES_MAX: usize = 32;

/// The one-target encoding of `parts` (when its subject and reply fit one) decodes to the same
/// parts and target, as that kind; a cut into its fixed part (header, subject, reply, headers)
/// does not decode. (The payload is the rest of the record, so cuts into it are not
/// detectable: the queue gives records their exact length.)
fn check_one_target(parts: &Parts<'_>, target: Option<Target>) {
    let Some(len) = one_target_len(parts) else {
        return;
    };
    let target = target.unwrap_or(Target {
        slot: u32::MAX,
        generation: 7,
    });
    let mut frame = vec![0u8; len];
    encode_one_target(&mut frame, parts, target);
    match decode(&frame) {
        Some(Decoded::One {
            message: decoded,
            target: decoded_target,
        }) => {
            assert_eq!(decoded, *parts, "one-target parts");
            assert_eq!(decoded_target, target, "one-target target");
        }
        other => panic!("a one-target frame decoded as {other:?}"),
    }
    let fixed = len - parts.payload.len();
    for cut in short_lengths(fixed, 0).filter(|&cut| cut < fixed) {
        assert!(
            decode(&frame[..cut]).is_none(),
            "one-target prefix {cut} decodes"
        );
    }
}

/// One message as a subscriber should read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: Vec<u8>,
    pub sid: Vec<u8>,
    pub reply: Option<Vec<u8>>,
    /// `Some` for `HMSG`.
    pub headers: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    // Whatever bytes reach a shard's queue, decoding them must not panic.
    let _ = Frame::decode(data);
    let _ = decode(data);

    let mut cursor = Cursor::new(data);
    let settings = cursor.byte();
    let split_seeds: Vec<u16> = (0..settings & 0b111).map(|_| cursor.u16()).collect();

    let number = cursor.u64();
    let mut text = Vec::new();
    write_u64(&mut text, number);
    assert_eq!(text, number.to_string().into_bytes(), "write_u64({number})");

    let mut stream = Vec::new();
    let mut sent = Vec::new();
    // One template for the whole input, re-rendered per message, as a shard keeps one.
    let mut template = MsgTemplate::default();
    while !cursor.is_empty() && sent.len() < MESSAGES_MAX {
        let flags = cursor.byte();
        let subject = field(&mut cursor);
        let sid = field(&mut cursor);
        let reply = field(&mut cursor);
        let headers = field(&mut cursor);
        let payload_len = usize::from(cursor.u16());
        let payload = cursor.take(payload_len);
        let reply = (flags & 0b1 != 0).then_some(reply);
        let headers = (flags & 0b10 != 0).then_some(headers);

        // The raw fields, whatever bytes they hold: the exact reference bytes.
        check_written(
            &mut Vec::new(),
            &mut template,
            subject,
            sid,
            reply,
            headers,
            payload,
        );

        // The same message in the domain a client can read back, through a frame.
        let message = Message {
            subject: readable(subject),
            sid: readable(sid),
            reply: reply.map(readable),
            headers: headers.map(<[u8]>::to_vec),
            payload: payload.to_vec(),
        };
        let route = (flags & 0b100 != 0).then_some(QueueRoute {
            queue: subject,
            hops: u32::from(flags),
            account: u32::from(flags) << 8 | u32::from(flags),
        });
        let targets: Vec<Target> = (0..u32::from(flags >> 3 & 0b111))
            .map(|index| Target {
                slot: index,
                generation: u32::from(flags) << index,
            })
            .collect();
        let parts = Parts {
            subject: &message.subject,
            reply: message.reply.as_deref(),
            headers: message.headers.as_deref(),
            payload: &message.payload,
        };
        let mut frame = vec![0u8; encoded_len(&parts, targets.len(), route)];
        encode(&mut frame, &parts, &targets, route);
        let decoded = Frame::decode(&frame).expect("an encoded frame decodes");
        assert_eq!(decoded.message, parts, "frame parts");
        assert_eq!(decoded.route, route, "frame route");
        assert!(
            decoded.targets().eq(targets.iter().copied()),
            "frame targets"
        );
        for len in short_lengths(frame.len(), parts.payload.len()) {
            assert!(
                Frame::decode(&frame[..len]).is_none(),
                "prefix {len} decodes"
            );
        }
        let mut longer = frame.clone();
        longer.push(0);
        assert!(Frame::decode(&longer).is_none(), "frame + 1 byte decodes");
        assert!(
            matches!(decode(&frame), Some(Decoded::Full(full)) if full.message == parts),
            "a full frame decodes as one"
        );
        check_one_target(&parts, targets.first().copied());

        let parts = decoded.message;
        check_written(
            &mut stream,
            &mut template,
            parts.subject,
            &message.sid,
            parts.reply,
            parts.headers,
            parts.payload,
        );
        sent.push(message);
    }

    let mut splits: Vec<usize> = split_seeds
        .iter()
        .map(|&seed| usize::from(seed) % (stream.len() + 1))
        .collect();
    splits.sort_unstable();
    let (received, leftover) = read_split(&stream, &splits);
    assert_eq!(leftover, 0, "bytes left over after the last message");
    assert_eq!(received, sent, "messages read back (splits {splits:?})");
}

/// Lengths of frame prefixes to try: all up to 64 bytes (the header and targets), then a few
/// (a decode is O(1), but trying every prefix of a large frame would make a run slow).
fn short_lengths(frame_len: usize, payload_len: usize) -> impl Iterator<Item = usize> {
    let few = [
        frame_len - 1,
        frame_len / 2,
        frame_len.saturating_sub(payload_len + 1),
    ];
    (0..frame_len.min(64)).chain(few)
}

/// A length byte and that many bytes (fewer when the input ends).
fn field<'a>(cursor: &mut Cursor<'a>) -> &'a [u8] {
    let len = usize::from(cursor.byte());
    cursor.take(len)
}

/// `bytes` with every blank, CR and LF replaced, and `_` if it is empty: a field a client can
/// read back (see the module docs).
fn readable(bytes: &[u8]) -> Vec<u8> {
    if bytes.is_empty() {
        return b"_".to_vec();
    }
    bytes
        .iter()
        .map(|&byte| match byte {
            b' ' | b'\t' | b'\r' | b'\n' => b'_',
            other => other,
        })
        .collect()
}

/// Appends the message with the writer under test; checks the appended bytes against the
/// reference formatter and `msg_len`, and that what was in `out` is untouched. Then renders it
/// into `template` and checks what the template writes for this sid and two others.
fn check_written(
    out: &mut Vec<u8>,
    template: &mut MsgTemplate,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) {
    let before = out.len();
    let prefix_sum: u64 = out.iter().map(|&byte| u64::from(byte)).sum();
    match headers {
        None => write_msg(out, subject, sid, reply, payload),
        Some(headers) => write_hmsg(out, subject, sid, reply, headers, payload),
    }
    let written = &out[before..];
    let expected = reference(subject, sid, reply, headers, payload);
    assert!(
        written == expected.as_slice(),
        "writer bytes differ\nwritten:  {:?}\nexpected: {:?}",
        String::from_utf8_lossy(written),
        String::from_utf8_lossy(&expected)
    );
    let predicted = msg_len(subject, sid, reply, headers.map(<[u8]>::len), payload.len());
    assert_eq!(written.len(), predicted, "msg_len");
    let prefix_after: u64 = out[..before].iter().map(|&byte| u64::from(byte)).sum();
    assert_eq!(prefix_after, prefix_sum, "bytes before the message changed");

    // Fan-out renders the frame once without its sid and copies it per subscriber.
    template.render(subject, reply, headers, payload);
    for sid in [sid, b"4294967295", b""] {
        let mut from_template = b"?".to_vec();
        template.write(&mut from_template, sid);
        let expected = reference(subject, sid, reply, headers, payload);
        assert!(
            from_template[1..] == expected[..],
            "template bytes differ for sid {sid:?}\nwritten:  {:?}\nexpected: {:?}",
            String::from_utf8_lossy(&from_template[1..]),
            String::from_utf8_lossy(&expected)
        );
    }
}

/// The bytes PROTOCOL.md §1.2 gives, built the plain way.
fn reference(
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut fields: Vec<Vec<u8>> = vec![
        if headers.is_some() {
            &b"HMSG"[..]
        } else {
            b"MSG"
        }
        .to_vec(),
        subject.to_vec(),
        sid.to_vec(),
    ];
    fields.extend(reply.map(<[u8]>::to_vec));
    if let Some(headers) = headers {
        fields.push(headers.len().to_string().into_bytes());
        fields.push((headers.len() + payload.len()).to_string().into_bytes());
    } else {
        fields.push(payload.len().to_string().into_bytes());
    }
    let mut bytes = fields.join(&b' ');
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(headers.unwrap_or_default());
    bytes.extend_from_slice(payload);
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// Reads `stream` as a client whose reads end at `splits`: (messages, bytes left over).
/// Panics on bytes a client could not read.
pub fn read_split(stream: &[u8], splits: &[usize]) -> (Vec<Message>, usize) {
    let mut messages = Vec::new();
    let mut carry = Vec::new();
    let mut chunk_start = 0;
    for chunk_end in splits.iter().copied().chain([stream.len()]) {
        carry.extend_from_slice(&stream[chunk_start..chunk_end]);
        chunk_start = chunk_end;
        let mut parsed = 0;
        while let Some((message, used)) = ClientReader::read(&carry[parsed..]) {
            messages.push(message);
            parsed += used;
        }
        carry.drain(..parsed);
    }
    (messages, carry.len())
}

/// A strict client-side reader of `MSG` and `HMSG` (PROTOCOL.md §1.2), independent of the
/// server's parser.
pub struct ClientReader;

impl ClientReader {
    /// The first message of `input` and the bytes it took, or None when more bytes are needed.
    /// Panics on anything that is not a well-formed `MSG`/`HMSG`.
    pub fn read(input: &[u8]) -> Option<(Message, usize)> {
        let line_end = input.windows(2).position(|pair| pair == b"\r\n")?;
        let line = &input[..line_end];
        let shown = String::from_utf8_lossy(line);
        let fields: Vec<&[u8]> = line.split(|&byte| byte == b' ').collect();
        assert!(
            fields.iter().all(|field| !field.is_empty()),
            "empty field in {shown:?}"
        );
        let (headers_len, total_len, routing) = match fields[0] {
            b"MSG" => {
                let (size, routing) = fields[1..].split_last().expect("fields");
                let size = decimal(size, &shown);
                (None, size, routing)
            }
            b"HMSG" => {
                let (total, rest) = fields[1..].split_last().expect("fields");
                let (headers, routing) = rest.split_last().expect("fields");
                let headers = decimal(headers, &shown);
                let total = decimal(total, &shown);
                assert!(headers <= total, "header size above total in {shown:?}");
                (Some(headers), total, routing)
            }
            _ => panic!("not MSG or HMSG: {shown:?}"),
        };
        let (subject, sid, reply) = match *routing {
            [subject, sid] => (subject, sid, None),
            [subject, sid, reply] => (subject, sid, Some(reply.to_vec())),
            _ => panic!("{} routing fields in {shown:?}", routing.len()),
        };
        let body_start = line_end + 2;
        let body_end = body_start + total_len;
        let trailer = input.get(body_end..body_end + 2)?;
        assert_eq!(trailer, b"\r\n", "payload trailer after {shown:?}");
        let body = &input[body_start..body_end];
        let (headers, payload) = match headers_len {
            None => (None, body),
            Some(len) => (Some(body[..len].to_vec()), &body[len..]),
        };
        let message = Message {
            subject: subject.to_vec(),
            sid: sid.to_vec(),
            reply,
            headers,
            payload: payload.to_vec(),
        };
        Some((message, body_end + 2))
    }
}

/// A size as a client reads it: decimal digits, no sign, no leading zero.
fn decimal(digits: &[u8], line: &str) -> usize {
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0');
    assert!(canonical, "bad size {digits:?} in {line:?}");
    std::str::from_utf8(digits)
        .expect("digits")
        .parse()
        .unwrap_or_else(|_| panic!("size overflows in {line:?}"))
}
