//! A message as it travels from one shard to another: written once into the pair's queue with
//! the list of subscriptions on the receiving shard it is for, read there in place.
//!
//! Two kinds, told apart by bit 31 of the first word (little endian throughout).
//!
//! A *full* frame, for any message, target list and queue route:
//! ```text
//! u32 subject_len | u32 reply_len + 1 (0: none) | u32 headers_len + 1 (0: none) | u32 payload_len
//! u32 queue_len + 1 (0: none) | u32 hops | u32 target_count | u32 account (of the queue route)
//! target_count × (u32 slot, u32 generation)
//! subject | reply | headers | payload | queue
//! ```
//! A frame without a queue is for every target. A frame with a queue is for exactly one of its
//! targets (members of that queue group on the receiving shard, tried in order); `hops` counts
//! how often it was passed on because none of them could take it. Its first word, the subject
//! length, is below 2^31 (a subject is part of a control line, at most 4 KiB).
//!
//! A *one-target* frame, for the common case of a message matching exactly one subscription
//! on the receiving shard and no queue group: 12 or 16 bytes of header instead of 40, and a
//! decode of a few loads, since a 1 → 1 stream between shards pays for it once per message.
//! ```text
//! u32 1 | has_headers | reply_len + 1 (15 bits, 0: none) | subject_len (15 bits)
//! u32 slot | u32 generation | [u32 headers_len, when has_headers]
//! subject | reply | headers | payload (the rest of the frame)
//! ```
//! A message whose subject or reply does not fit in 15 bits travels as a full frame.
//!
//! Decoding checks every length against the frame, so a bug cannot make it read out of bounds.

use crate::proto::Message;
use crate::sublist::SubHandle;

/// Bytes of the fixed header.
pub const HEADER_BYTES: usize = 32;
/// Bytes of one target.
pub const TARGET_BYTES: usize = 8;
/// The `hops` of a frame that forwards a message to a cluster route on the receiving shard:
/// its one target is the route's remote-table entry, and its queue field holds the names of
/// the queue groups the route serves for it, space separated (empty: none). A queue delivery
/// passed on between shards never counts this high (`requeue` stops at twice the shards).
pub const FORWARD_HOPS: u32 = u32::MAX;

/// A subscription on the receiving shard: its slot and the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub slot: u32,
    pub generation: u32,
}

impl From<SubHandle> for Target {
    /// The handle without its shard (the frame goes to that shard).
    #[inline]
    fn from(handle: SubHandle) -> Target {
        Target {
            slot: handle.slot,
            generation: handle.generation,
        }
    }
}

/// For a queue-group delivery: the group's name, the account whose table has the group (to
/// find another member when the listed ones are gone), and how often the frame was passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRoute<'a> {
    pub queue: &'a [u8],
    pub hops: u32,
    pub account: u32,
}

/// Exact encoded size of a frame.
pub fn encoded_len(
    message: &Message<'_>,
    target_count: usize,
    route: Option<QueueRoute<'_>>,
) -> usize {
    HEADER_BYTES
        + target_count * TARGET_BYTES
        + message.subject.len()
        + message.reply.map_or(0, <[u8]>::len)
        + message.headers.map_or(0, <[u8]>::len)
        + message.payload.len()
        + route.map_or(0, |r| r.queue.len())
}

/// Writes the full frame into `out`, which is exactly `encoded_len` bytes.
pub fn encode(
    out: &mut [u8],
    message: &Message<'_>,
    targets: &[Target],
    route: Option<QueueRoute<'_>>,
) {
    assert_eq!(
        out.len(),
        encoded_len(message, targets.len(), route),
        "frame buffer of the exact size"
    );
    assert!(
        message.subject.len() < ONE_TARGET_FLAG as usize,
        "a subject below 2 GiB, so a full frame is not taken for a one-target one"
    );
    let optional_len = |part: Option<&[u8]>| part.map_or(0, |p| p.len() as u32 + 1);
    let fields = [
        message.subject.len() as u32,
        optional_len(message.reply),
        optional_len(message.headers),
        message.payload.len() as u32,
        optional_len(route.map(|r| r.queue)),
        route.map_or(0, |r| r.hops),
        targets.len() as u32,
        route.map_or(0, |r| r.account),
    ];
    // Fixed-size pieces are plain stores; only the variable message that are there are copied
    // (a `copy_from_slice` per piece, empty ones included, was a `memcpy` call each).
    let (header, rest) = out.split_at_mut(HEADER_BYTES);
    for (bytes, field) in header.chunks_exact_mut(4).zip(fields) {
        bytes.copy_from_slice(&field.to_le_bytes());
    }
    let (target_bytes, mut rest) = rest.split_at_mut(targets.len() * TARGET_BYTES);
    for (bytes, target) in target_bytes.chunks_exact_mut(TARGET_BYTES).zip(targets) {
        bytes[..4].copy_from_slice(&target.slot.to_le_bytes());
        bytes[4..].copy_from_slice(&target.generation.to_le_bytes());
    }
    let variable = [
        message.subject,
        message.reply.unwrap_or_default(),
        message.headers.unwrap_or_default(),
        message.payload,
        route.map_or(&[][..], |r| r.queue),
    ];
    for part in variable.into_iter().filter(|part| !part.is_empty()) {
        let (bytes, after) = rest.split_at_mut(part.len());
        bytes.copy_from_slice(part);
        rest = after;
    }
    debug_assert!(rest.is_empty(), "encoded_len counted every byte");
}

/// Bit 31 of the first word: set exactly in a one-target frame.
const ONE_TARGET_FLAG: u32 = 1 << 31;
/// Bit 30 of a one-target frame's first word: set exactly when the message has headers.
const HEADERS_FLAG: u32 = 1 << 30;
/// Width of each of the two length fields in a one-target frame's first word.
const ONE_TARGET_LEN_BITS: u32 = 15;
const ONE_TARGET_LEN_MASK: u32 = (1 << ONE_TARGET_LEN_BITS) - 1;
/// Bytes of a one-target frame's header without / with the headers' length.
const ONE_TARGET_HEADER_BYTES: usize = 12;
const ONE_TARGET_HEADERS_HEADER_BYTES: usize = 16;

const _: () = assert!(HEADERS_FLAG > ONE_TARGET_LEN_MASK << ONE_TARGET_LEN_BITS);
const _: () = assert!(crate::limits::CONTROL_LINE_BYTES_MAX_DEFAULT < ONE_TARGET_LEN_MASK);

/// Exact encoded size of `message` as a one-target frame; None when its subject or reply is too
/// long for one (it then travels as a full frame).
#[inline]
pub fn one_target_len(message: &Message<'_>) -> Option<usize> {
    let reply_len = message.reply.map_or(0, <[u8]>::len);
    if message.subject.len() > ONE_TARGET_LEN_MASK as usize
        || reply_len >= ONE_TARGET_LEN_MASK as usize
    {
        return None;
    }
    let header_bytes = match message.headers {
        None => ONE_TARGET_HEADER_BYTES,
        Some(headers) => ONE_TARGET_HEADERS_HEADER_BYTES + headers.len(),
    };
    Some(header_bytes + message.subject.len() + reply_len + message.payload.len())
}

/// Writes the one-target frame into `out`, which is exactly `one_target_len` bytes (the
/// payload's copy, last, checks that: it fills exactly what is left).
#[inline]
pub fn encode_one_target(out: &mut [u8], message: &Message<'_>, target: Target) {
    debug_assert_eq!(
        Some(out.len()),
        one_target_len(message),
        "frame buffer of the exact size"
    );
    let reply_field = message.reply.map_or(0, |reply| reply.len() as u32 + 1);
    let mut first =
        ONE_TARGET_FLAG | reply_field << ONE_TARGET_LEN_BITS | message.subject.len() as u32;
    let (header, mut rest) = match message.headers {
        None => out.split_at_mut(ONE_TARGET_HEADER_BYTES),
        Some(headers) => {
            first |= HEADERS_FLAG;
            let (header, rest) = out.split_at_mut(ONE_TARGET_HEADERS_HEADER_BYTES);
            header[12..16].copy_from_slice(&(headers.len() as u32).to_le_bytes());
            (header, rest)
        }
    };
    header[0..4].copy_from_slice(&first.to_le_bytes());
    header[4..8].copy_from_slice(&target.slot.to_le_bytes());
    header[8..12].copy_from_slice(&target.generation.to_le_bytes());
    let mut put = |part: &[u8]| {
        let (bytes, after) = std::mem::take(&mut rest).split_at_mut(part.len());
        copy_short(bytes, part);
        rest = after;
    };
    put(message.subject);
    if let Some(reply) = message.reply {
        put(reply);
    }
    if let Some(headers) = message.headers {
        put(headers);
    }
    copy_short(rest, message.payload);
}

/// `dst.copy_from_slice(src)`, with the short lengths of subjects and small payloads done by
/// two overlapping loads and stores in place instead of a call to `memcpy` (its call and size
/// dispatch were a third of a one-target frame's encoding).
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let len = src.len();
    assert_eq!(dst.len(), len, "copy between slices of one length");
    match len {
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[len / 2] = src[len / 2];
            dst[len - 1] = src[len - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[len - 4..].copy_from_slice(&src[len - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[len - 8..].copy_from_slice(&src[len - 8..]);
        }
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[len - 16..].copy_from_slice(&src[len - 16..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// A decoded frame of either kind.
#[derive(Debug, Clone, Copy)]
pub enum Decoded<'a> {
    One {
        message: Message<'a>,
        target: Target,
    },
    Full(Frame<'a>),
}

/// Reads a frame of either kind; None when the lengths do not add up (a bug on the writing
/// side).
#[inline]
pub fn decode(bytes: &[u8]) -> Option<Decoded<'_>> {
    let first = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    if first & ONE_TARGET_FLAG == 0 {
        return Frame::decode(bytes).map(Decoded::Full);
    }
    let header: &[u8; ONE_TARGET_HEADER_BYTES] =
        bytes.get(..ONE_TARGET_HEADER_BYTES)?.try_into().ok()?;
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let target = Target {
        slot: word(4),
        generation: word(8),
    };
    let subject_len = (first & ONE_TARGET_LEN_MASK) as usize;
    let reply_field = ((first >> ONE_TARGET_LEN_BITS) & ONE_TARGET_LEN_MASK) as usize;
    let (headers_len, mut rest) = if first & HEADERS_FLAG == 0 {
        (None, &bytes[ONE_TARGET_HEADER_BYTES..])
    } else {
        let len = bytes.get(12..16)?;
        (
            Some(u32::from_le_bytes(len.try_into().ok()?) as usize),
            bytes.get(ONE_TARGET_HEADERS_HEADER_BYTES..)?,
        )
    };
    let mut take = |len: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(len)?;
        rest = tail;
        Some(head)
    };
    let subject = take(subject_len)?;
    let reply = match reply_field {
        0 => None,
        field => Some(take(field - 1)?),
    };
    let headers = match headers_len {
        None => None,
        Some(len) => Some(take(len)?),
    };
    Some(Decoded::One {
        message: Message {
            subject,
            reply,
            headers,
            payload: rest,
        },
        target,
    })
}

/// A decoded full frame, borrowing the queue's memory.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub message: Message<'a>,
    pub route: Option<QueueRoute<'a>>,
    targets: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Reads a full frame; None when the lengths do not add up (a bug on the writing side).
    pub fn decode(frame: &'a [u8]) -> Option<Frame<'a>> {
        let word = |i: usize| -> Option<usize> {
            let bytes = frame.get(i * 4..i * 4 + 4)?;
            Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
        };
        let subject_len = word(0)?;
        let reply_len = word(1)?;
        let headers_len = word(2)?;
        let payload_len = word(3)?;
        let queue_len = word(4)?;
        let hops = word(5)? as u32;
        let target_count = word(6)?;
        let account = word(7)? as u32;
        let mut rest = frame.get(HEADER_BYTES..)?;
        let mut take = |len: usize| -> Option<&'a [u8]> {
            let (head, tail) = rest.split_at_checked(len)?;
            rest = tail;
            Some(head)
        };
        let targets = take(target_count.checked_mul(TARGET_BYTES)?)?;
        let subject = take(subject_len)?;
        let reply = if reply_len == 0 {
            None
        } else {
            Some(take(reply_len - 1)?)
        };
        let headers = if headers_len == 0 {
            None
        } else {
            Some(take(headers_len - 1)?)
        };
        let payload = take(payload_len)?;
        let route = if queue_len == 0 {
            None
        } else {
            Some(QueueRoute {
                queue: take(queue_len - 1)?,
                hops,
                account,
            })
        };
        if !rest.is_empty() {
            return None;
        }
        Some(Frame {
            message: Message {
                subject,
                reply,
                headers,
                payload,
            },
            route,
            targets,
        })
    }

    pub fn targets(&self) -> impl ExactSizeIterator<Item = Target> + 'a {
        self.targets.chunks_exact(TARGET_BYTES).map(|chunk| Target {
            slot: u32::from_le_bytes(chunk[..4].try_into().expect("4 bytes")),
            generation: u32::from_le_bytes(chunk[4..].try_into().expect("4 bytes")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: Message<'_>, targets: &[Target]) {
        for route in [
            None,
            Some(QueueRoute {
                queue: b"workers",
                hops: 3,
                account: 7,
            }),
        ] {
            let mut buf = vec![0u8; encoded_len(&message, targets.len(), route)];
            encode(&mut buf, &message, targets, route);
            let frame = Frame::decode(&buf).expect("decodes");
            assert_eq!(frame.message, message);
            assert_eq!(frame.route, route);
            assert_eq!(frame.targets().collect::<Vec<_>>(), targets);
        }
    }

    #[test]
    fn frames_round_trip() {
        let targets = [
            Target {
                slot: 1,
                generation: 7,
            },
            Target {
                slot: u32::MAX,
                generation: 0,
            },
        ];
        round_trip(
            Message {
                subject: b"foo.bar",
                reply: None,
                headers: None,
                payload: b"hello",
            },
            &targets,
        );
        round_trip(
            Message {
                subject: b"a",
                reply: Some(b"_INBOX.x"),
                headers: None,
                payload: b"",
            },
            &targets[..1],
        );
        round_trip(
            Message {
                subject: b"h",
                reply: Some(b""),
                headers: Some(b"NATS/1.0\r\n\r\n"),
                payload: b"x",
            },
            &[],
        );
        round_trip(
            Message {
                subject: b"",
                reply: None,
                headers: Some(b""),
                payload: &[0u8; 70000],
            },
            &targets,
        );
    }

    fn one_target_round_trip(message: Message<'_>, target: Target) {
        let len = one_target_len(&message).expect("fits a one-target frame");
        let mut buf = vec![0u8; len];
        encode_one_target(&mut buf, &message, target);
        match decode(&buf).expect("decodes") {
            Decoded::One {
                message: decoded,
                target: decoded_target,
            } => {
                assert_eq!(decoded, message);
                assert_eq!(decoded_target, target);
            }
            Decoded::Full(_) => panic!("a one-target frame decoded as a full one"),
        }
        // Every cut that leaves out part of the header, subject, reply or headers is refused
        // (the payload is the rest of the frame: the queue gives frames their exact length).
        let fixed = len - message.payload.len();
        // Under Miri the first and last 64 cuts and every 61st between (each cut decodes the
        // whole header again, and the long parts make thousands of cuts).
        let sampled =
            |cut: usize| !cfg!(miri) || cut < 64 || cut + 64 >= fixed || cut.is_multiple_of(61);
        for cut in (0..fixed).filter(|&cut| sampled(cut)) {
            assert!(decode(&buf[..cut]).is_none(), "cut at {cut} of {fixed}");
        }
    }

    #[test]
    fn one_target_frames_round_trip() {
        let target = Target {
            slot: 0xDEAD_BEEF,
            generation: u32::MAX,
        };
        let long = vec![b'r'; ONE_TARGET_LEN_MASK as usize - 1];
        let subjects: [&[u8]; 3] = [b"", b"foo.bar", &long[..ONE_TARGET_LEN_MASK as usize - 1]];
        let replies: [Option<&[u8]>; 4] = [None, Some(b""), Some(b"_INBOX.x"), Some(&long)];
        let headers: [Option<&[u8]>; 3] = [None, Some(b""), Some(b"NATS/1.0\r\nA: b\r\n\r\n")];
        let payloads: [&[u8]; 3] = [b"", b"hello", &[9u8; 70000]];
        // Under Miri (CI runs it over xshard/) every 7th of the 108 combinations, which still
        // covers each value of each part: the whole set takes minutes there.
        let step = if cfg!(miri) { 7 } else { 1 };
        let mut combination = 0;
        for subject in subjects {
            for reply in replies {
                for headers in headers {
                    for payload in payloads {
                        combination += 1;
                        if combination % step != 0 {
                            continue;
                        }
                        one_target_round_trip(
                            Message {
                                subject,
                                reply,
                                headers,
                                payload,
                            },
                            target,
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn long_subjects_and_replies_take_full_frames() {
        let long = vec![b'x'; ONE_TARGET_LEN_MASK as usize + 1];
        let message = |subject, reply| Message {
            subject,
            reply,
            headers: None,
            payload: b"p",
        };
        assert!(one_target_len(&message(&long[..ONE_TARGET_LEN_MASK as usize], None)).is_some());
        assert!(one_target_len(&message(&long, None)).is_none());
        let reply = &long[..ONE_TARGET_LEN_MASK as usize];
        assert!(one_target_len(&message(b"s", Some(&reply[1..]))).is_some());
        assert!(one_target_len(&message(b"s", Some(reply))).is_none());
        // Such a message as a full frame decodes as one, whatever its lengths.
        let message = message(&long, Some(&long));
        let target = Target {
            slot: 1,
            generation: 2,
        };
        let mut buf = vec![0u8; encoded_len(&message, 1, None)];
        encode(&mut buf, &message, &[target], None);
        match decode(&buf).expect("decodes") {
            Decoded::Full(frame) => {
                assert_eq!(frame.message, message);
                assert_eq!(frame.targets().collect::<Vec<_>>(), [target]);
            }
            Decoded::One { .. } => panic!("a full frame decoded as a one-target one"),
        }
    }

    #[test]
    fn short_copies_copy_every_byte() {
        for len in 0..100 {
            let src: Vec<u8> = (1..=len as u8).collect();
            let mut dst = vec![0u8; len];
            copy_short(&mut dst, &src);
            assert_eq!(dst, src, "length {len}");
        }
    }

    #[test]
    fn truncated_or_padded_frames_are_rejected() {
        let message = Message {
            subject: b"foo",
            reply: Some(b"r"),
            headers: None,
            payload: b"data",
        };
        let targets = [Target {
            slot: 3,
            generation: 4,
        }];
        for route in [
            None,
            Some(QueueRoute {
                queue: b"q",
                hops: 0,
                account: 0,
            }),
        ] {
            let mut buf = vec![0u8; encoded_len(&message, 1, route)];
            encode(&mut buf, &message, &targets, route);
            for cut in 0..buf.len() {
                assert!(Frame::decode(&buf[..cut]).is_none(), "cut at {cut}");
            }
            buf.push(0);
            assert!(Frame::decode(&buf).is_none());
        }
    }
}
