//! A message as it travels from one shard to another: written once into the pair's queue with
//! the list of subscriptions on the receiving shard it is for, read there in place.
//!
//! Layout (little endian), every frame:
//! ```text
//! u32 subject_len | u32 reply_len + 1 (0: none) | u32 headers_len + 1 (0: none) | u32 payload_len
//! u32 queue_len + 1 (0: none) | u32 hops | u32 target_count | target_count × (u32 slot, u32 generation)
//! subject | reply | headers | payload | queue
//! ```
//! A frame without a queue is for every target. A frame with a queue is for exactly one of its
//! targets (members of that queue group on the receiving shard, tried in order); `hops` counts
//! how often it was passed on because none of them could take it.
//! Decoding checks every length against the frame, so a bug cannot make it read out of bounds.

/// Bytes of the fixed header.
pub const HEADER_BYTES: usize = 28;
/// Bytes of one target.
pub const TARGET_BYTES: usize = 8;

/// A subscription on the receiving shard: its slot and the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub slot: u32,
    pub generation: u32,
}

/// The parts of a message, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    pub headers: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

/// For a queue-group delivery: the group's name and how often the frame was passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRoute<'a> {
    pub queue: &'a [u8],
    pub hops: u32,
}

/// Exact encoded size of a frame.
pub fn encoded_len(parts: &Parts<'_>, target_count: usize, route: Option<QueueRoute<'_>>) -> usize {
    HEADER_BYTES
        + target_count * TARGET_BYTES
        + parts.subject.len()
        + parts.reply.map_or(0, <[u8]>::len)
        + parts.headers.map_or(0, <[u8]>::len)
        + parts.payload.len()
        + route.map_or(0, |r| r.queue.len())
}

/// Writes the frame into `out`, which is exactly `encoded_len` bytes.
pub fn encode(
    out: &mut [u8],
    parts: &Parts<'_>,
    targets: &[Target],
    route: Option<QueueRoute<'_>>,
) {
    assert_eq!(
        out.len(),
        encoded_len(parts, targets.len(), route),
        "frame buffer of the exact size"
    );
    let optional_len = |part: Option<&[u8]>| part.map_or(0, |p| p.len() as u32 + 1);
    let fields = [
        parts.subject.len() as u32,
        optional_len(parts.reply),
        optional_len(parts.headers),
        parts.payload.len() as u32,
        optional_len(route.map(|r| r.queue)),
        route.map_or(0, |r| r.hops),
        targets.len() as u32,
    ];
    // Fixed-size pieces are plain stores; only the variable parts that are there are copied
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
        parts.subject,
        parts.reply.unwrap_or_default(),
        parts.headers.unwrap_or_default(),
        parts.payload,
        route.map_or(&[][..], |r| r.queue),
    ];
    for part in variable.into_iter().filter(|part| !part.is_empty()) {
        let (bytes, after) = rest.split_at_mut(part.len());
        bytes.copy_from_slice(part);
        rest = after;
    }
    debug_assert!(rest.is_empty(), "encoded_len counted every byte");
}

/// A decoded frame, borrowing the queue's memory.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub parts: Parts<'a>,
    pub route: Option<QueueRoute<'a>>,
    targets: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Reads a frame; None when the lengths do not add up (a bug on the writing side).
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
            })
        };
        if !rest.is_empty() {
            return None;
        }
        Some(Frame {
            parts: Parts {
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

    fn round_trip(parts: Parts<'_>, targets: &[Target]) {
        for route in [
            None,
            Some(QueueRoute {
                queue: b"workers",
                hops: 3,
            }),
        ] {
            let mut buf = vec![0u8; encoded_len(&parts, targets.len(), route)];
            encode(&mut buf, &parts, targets, route);
            let frame = Frame::decode(&buf).expect("decodes");
            assert_eq!(frame.parts, parts);
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
            Parts {
                subject: b"foo.bar",
                reply: None,
                headers: None,
                payload: b"hello",
            },
            &targets,
        );
        round_trip(
            Parts {
                subject: b"a",
                reply: Some(b"_INBOX.x"),
                headers: None,
                payload: b"",
            },
            &targets[..1],
        );
        round_trip(
            Parts {
                subject: b"h",
                reply: Some(b""),
                headers: Some(b"NATS/1.0\r\n\r\n"),
                payload: b"x",
            },
            &[],
        );
        round_trip(
            Parts {
                subject: b"",
                reply: None,
                headers: Some(b""),
                payload: &[0u8; 70000],
            },
            &targets,
        );
    }

    #[test]
    fn truncated_or_padded_frames_are_rejected() {
        let parts = Parts {
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
            }),
        ] {
            let mut buf = vec![0u8; encoded_len(&parts, 1, route)];
            encode(&mut buf, &parts, &targets, route);
            for cut in 0..buf.len() {
                assert!(Frame::decode(&buf[..cut]).is_none(), "cut at {cut}");
            }
            buf.push(0);
            assert!(Frame::decode(&buf).is_none());
        }
    }
}
