//! Writing server-to-client operations into an outbound buffer: `MSG`, `HMSG`, `-ERR`.
//!
//! Hot path: no formatting machinery, no allocation beyond the buffer's own growth. `MSG` and
//! `HMSG` compute the frame's exact length, grow the buffer to it once and copy the pieces into
//! that slice ([`Frame`]): appending piece by piece re-checked the capacity and stored the
//! length for each piece, and with the digits pushed one by one and a second call for the
//! routing part, a 16-byte MSG took 272 instructions (callgrind, `write_msg` inclusive).
//! Other integers go through [`write_u64`].

use super::error::ServerError;

/// Appends `n` in decimal. The digits are written in place, each with a `push` into room
/// reserved beforehand: a copy from a stack buffer called `memmove` for two or three bytes,
/// which cost more than the rest of a small MSG's header together.
#[inline]
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    let len = decimal_len(n);
    out.reserve(len);
    let start = out.len();
    for _ in 0..len {
        out.push(b'0');
    }
    let mut rest = n;
    for digit in out[start..].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    debug_assert_eq!(rest, 0, "decimal_len counted every digit");
}

/// Number of decimal digits of `n`. Two digits a step: a payload size under 100 costs a
/// comparison and no division.
#[inline]
fn decimal_len(n: u64) -> usize {
    let mut len = 1;
    let mut rest = n;
    while rest >= 100 {
        rest /= 100;
        len += 2;
    }
    len + usize::from(rest >= 10)
}

/// `"00" "01" ... "99"`: the two digits of each number under 100.
const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0; 2]; 100];
    let mut n = 0;
    while n < 100 {
        pairs[n] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        n += 1;
    }
    pairs
};

/// Appends `MSG <subject> <sid> [reply] <len>\r\n<payload>\r\n`.
pub fn write_msg(
    out: &mut Vec<u8>,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    payload: &[u8],
) {
    let size_digits = decimal_len(payload.len() as u64);
    let len =
        b"MSG ".len() + routing_len(subject, sid, reply) + size_digits + 2 + payload.len() + 2;
    debug_assert_eq!(
        len,
        msg_len(subject, sid, reply, None, payload.len()),
        "write_msg's length is msg_len's"
    );
    // A large payload is appended after the frame of the line: the frame's zero-fill would
    // write it twice (a `memset` of 1 KiB per message showed in a 1 KiB profile).
    let inline = payload.len() <= FRAME_PAYLOAD_BYTES_MAX;
    out.reserve(len);
    let mut frame = Frame::grow(out, if inline { len } else { len - payload.len() - 2 });
    frame.put(b"MSG ");
    frame.put_routing(subject, sid, reply);
    frame.put_decimal(payload.len() as u64, size_digits);
    frame.put(b"\r\n");
    if inline {
        frame.put(payload);
        frame.put(b"\r\n");
        frame.finish();
    } else {
        frame.finish();
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }
}

/// The largest payload a frame writer copies into its zero-filled frame; a larger one is
/// appended after it (see `write_msg`).
const FRAME_PAYLOAD_BYTES_MAX: usize = 128;

/// Appends `HMSG <subject> <sid> [reply] <hdr len> <total len>\r\n<headers><payload>\r\n`.
pub fn write_hmsg(
    out: &mut Vec<u8>,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: &[u8],
    payload: &[u8],
) {
    let total = headers.len() + payload.len();
    let (headers_digits, total_digits) =
        (decimal_len(headers.len() as u64), decimal_len(total as u64));
    let len = b"HMSG ".len()
        + routing_len(subject, sid, reply)
        + headers_digits
        + 1
        + total_digits
        + 2
        + total
        + 2;
    debug_assert_eq!(
        len,
        msg_len(subject, sid, reply, Some(headers.len()), payload.len()),
        "write_hmsg's length is msg_len's"
    );
    let inline = total <= FRAME_PAYLOAD_BYTES_MAX;
    out.reserve(len);
    let mut frame = Frame::grow(out, if inline { len } else { len - total - 2 });
    frame.put(b"HMSG ");
    frame.put_routing(subject, sid, reply);
    frame.put_decimal(headers.len() as u64, headers_digits);
    frame.put(b" ");
    frame.put_decimal(total as u64, total_digits);
    frame.put(b"\r\n");
    if inline {
        frame.put(headers);
        frame.put(payload);
        frame.put(b"\r\n");
        frame.finish();
    } else {
        frame.finish();
        out.extend_from_slice(headers);
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }
}

/// The part of an outbound buffer a frame writer fills: grown to the frame's exact length
/// (zero-filled: one `memset`, cheaper than the per-piece capacity checks it replaces), then
/// filled front to back. Each `put` is a bounds check and a copy, with the cursor in registers.
struct Frame<'a> {
    /// What is not written yet.
    rest: &'a mut [u8],
}

impl<'a> Frame<'a> {
    /// Appends `len` bytes to `out` for the frame.
    #[inline(always)]
    fn grow(out: &'a mut Vec<u8>, len: usize) -> Frame<'a> {
        let start = out.len();
        out.resize(start + len, 0);
        Frame {
            rest: &mut out[start..],
        }
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let (piece, rest) = std::mem::take(&mut self.rest).split_at_mut(bytes.len());
        copy_short(piece, bytes);
        self.rest = rest;
    }

    /// `n` in decimal, `digits` (its `decimal_len`) bytes.
    #[inline(always)]
    fn put_decimal(&mut self, n: u64, digits: usize) {
        let (mut piece, rest) = std::mem::take(&mut self.rest).split_at_mut(digits);
        // From the last two digits back, a pair at a time.
        let mut left = n;
        while let [head @ .., tens, ones] = piece {
            [*tens, *ones] = DIGIT_PAIRS[(left % 100) as usize];
            left /= 100;
            piece = head;
        }
        if let [ones] = piece {
            *ones = b'0' + (left % 10) as u8;
            left /= 10;
        }
        debug_assert_eq!(left, 0, "decimal_len counted every digit");
        self.rest = rest;
    }

    /// `<subject> <sid> [reply] ` (with the trailing space).
    #[inline(always)]
    fn put_routing(&mut self, subject: &[u8], sid: &[u8], reply: Option<&[u8]>) {
        self.put(subject);
        self.put(b" ");
        self.put(sid);
        self.put(b" ");
        if let Some(reply) = reply {
            self.put(reply);
            self.put(b" ");
        }
    }

    /// Checks that the length given to `grow` was the frame's.
    #[inline(always)]
    fn finish(self) {
        debug_assert!(self.rest.is_empty(), "the frame's length was exact");
    }
}

/// `HMSG` when there are `headers`, `MSG` otherwise.
#[inline]
pub fn write_msg_or_hmsg(
    out: &mut Vec<u8>,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) {
    match headers {
        Some(headers) => write_hmsg(out, subject, sid, reply, headers, payload),
        None => write_msg(out, subject, sid, reply, payload),
    }
}

/// One MSG or HMSG rendered once for the many subscribers of a shard: the whole frame but the
/// sid, which is all that differs between them. Writing it for a subscriber is three copies
/// (before the sid, the sid, after it) instead of the full writer's five pieces, digits and
/// length arithmetic: with 64 subscribers of a 16-byte message, the writer was half of the
/// server's time.
#[derive(Debug, Default)]
pub struct MsgTemplate {
    /// The frame with an empty sid.
    bytes: Vec<u8>,
    /// Where the sid goes in `bytes` (just after `MSG <subject> `).
    sid_at: usize,
}

impl MsgTemplate {
    /// Renders `MSG` (`headers: None`) or `HMSG` for `subject`, `reply` and the body.
    pub fn render(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) {
        self.bytes.clear();
        write_msg_or_hmsg(&mut self.bytes, subject, b"", reply, headers, payload);
        let op = if headers.is_some() { "HMSG " } else { "MSG " };
        self.sid_at = op.len() + subject.len() + 1;
    }

    /// Appends the rendered frame with `sid`: exactly what the full writer would append.
    /// Three appends, not a [`Frame`]: with only three pieces, the zero-fill and the short-copy
    /// branches cost more than the capacity checks they save (+6 instructions per message
    /// to 4 subscribers, callgrind).
    #[inline]
    pub fn write(&self, out: &mut Vec<u8>, sid: &[u8]) {
        let (head, tail) = self.bytes.split_at(self.sid_at);
        out.reserve(head.len() + sid.len() + tail.len());
        out.extend_from_slice(head);
        out.extend_from_slice(sid);
        out.extend_from_slice(tail);
    }
}

/// `piece.copy_from_slice(bytes)` (same lengths), with the lengths of a typical subject, sid
/// and small payload copied inline as two overlapping fixed-size copies (each one load and one
/// store): a `memcpy` call for them cost ~20 instructions with its setup (callgrind).
#[inline(always)]
fn copy_short(piece: &mut [u8], bytes: &[u8]) {
    let len = bytes.len();
    if (8..=16).contains(&len) {
        piece[..8].copy_from_slice(&bytes[..8]);
        piece[len - 8..].copy_from_slice(&bytes[len - 8..]);
    } else if (4..8).contains(&len) {
        piece[..4].copy_from_slice(&bytes[..4]);
        piece[len - 4..].copy_from_slice(&bytes[len - 4..]);
    } else if (1..4).contains(&len) {
        piece[0] = bytes[0];
        piece[len / 2] = bytes[len / 2];
        piece[len - 1] = bytes[len - 1];
    } else {
        piece.copy_from_slice(bytes);
    }
}

/// Length of `<subject> <sid> [reply] `.
#[inline(always)]
fn routing_len(subject: &[u8], sid: &[u8], reply: Option<&[u8]>) -> usize {
    subject.len() + 1 + sid.len() + 1 + reply.map_or(0, |reply| reply.len() + 1)
}

/// The server's keepalive.
pub const PING: &[u8] = b"PING\r\n";
/// The answer to a client's PING.
pub const PONG: &[u8] = b"PONG\r\n";
/// The acknowledgement of verbose mode.
pub const OK: &[u8] = b"+OK\r\n";

/// Appends the header block of the no-responders status a requester gets when nobody received
/// its request to `subject` (nats-server's `NATS/1.0 503` with `Nats-Subject`).
pub fn write_no_responders_headers(out: &mut Vec<u8>, subject: &[u8]) {
    out.extend_from_slice(b"NATS/1.0 503\r\nNats-Subject: ");
    out.extend_from_slice(subject);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends the error's `-ERR` line, if it has one.
pub fn write_err(out: &mut Vec<u8>, err: &ServerError) {
    if let Some(wire) = err.wire() {
        out.extend_from_slice(wire);
    }
}

/// Appends `-ERR '<text>'` for the errors whose text is made per case (permission violations:
/// nats-server quotes the subject with Go's `%q`).
pub fn write_err_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"-ERR '");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"'\r\n");
}

/// Length in bytes of the MSG write_msg would produce (used to check pending limits before
/// writing). With `headers_len: Some(_)`, the length of the HMSG `write_hmsg` would produce.
pub fn msg_len(
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers_len: Option<usize>,
    payload_len: usize,
) -> usize {
    let routing = routing_len(subject, sid, reply);
    let trailers = 2 + 2; // "\r\n" after the control line and after the payload
    match headers_len {
        None => b"MSG ".len() + routing + decimal_len(payload_len as u64) + trailers + payload_len,
        Some(headers_len) => {
            let total = headers_len + payload_len;
            b"HMSG ".len()
                + routing
                + decimal_len(headers_len as u64)
                + 1
                + decimal_len(total as u64)
                + trailers
                + total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::parser::parse_size;

    fn u64_text(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_u64(&mut out, n);
        out
    }

    #[test]
    fn u64_matches_std() {
        let mut values = vec![0, 1, 9, 10, 11, 99, 100, 12345, u64::MAX, u64::MAX - 1];
        for power in 0..20 {
            let n = 10u64.pow(power);
            values.extend([n - 1, n, n + 1]);
        }
        for n in values {
            assert_eq!(u64_text(n), n.to_string().into_bytes(), "{n}");
            assert_eq!(decimal_len(n), n.to_string().len(), "{n}");
        }
    }

    #[test]
    fn u64_appends() {
        let mut out = b"x".to_vec();
        write_u64(&mut out, 42);
        assert_eq!(out, b"x42");
    }

    #[test]
    fn msg_exact_bytes() {
        let mut out = Vec::new();
        write_msg(&mut out, b"foo.bar", b"1", None, b"hello");
        assert_eq!(out, b"MSG foo.bar 1 5\r\nhello\r\n");
        out.clear();
        write_msg(&mut out, b"foo", b"22", Some(b"_INBOX.x"), b"");
        assert_eq!(out, b"MSG foo 22 _INBOX.x 0\r\n\r\n");
        out.clear();
        write_msg(&mut out, b"a", b"1", None, b"x\r\ny");
        assert_eq!(out, b"MSG a 1 4\r\nx\r\ny\r\n");
    }

    /// The frame writers against plain concatenation, over every length `copy_short` treats
    /// apart and the digit counts `put_decimal` handles.
    #[test]
    fn frames_match_concatenation() {
        let text = |len: usize| (0..len).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>();
        let payload_lens = [0usize, 1, 7, 9, 10, 16, 99, 100, 101, 999, 1000, 12345];
        for piece_len in 0..=40 {
            let piece = text(piece_len);
            for &payload_len in &payload_lens {
                let payload = vec![b'p'; payload_len];
                let size = payload_len.to_string();
                for reply in [None, Some(&piece[..])] {
                    let mut want = b"?MSG ".to_vec();
                    for part in [&piece[..], b" ", &piece, b" "] {
                        want.extend_from_slice(part);
                    }
                    if let Some(reply) = reply {
                        want.extend_from_slice(reply);
                        want.push(b' ');
                    }
                    for part in [size.as_bytes(), b"\r\n", &payload, b"\r\n"] {
                        want.extend_from_slice(part);
                    }
                    let mut got = b"?".to_vec();
                    write_msg(&mut got, &piece, &piece, reply, &payload);
                    assert_eq!(got, want, "{piece_len} {payload_len}");

                    let headers = text(payload_len);
                    let mut want = b"HMSG ".to_vec();
                    want.extend_from_slice(&piece);
                    want.push(b' ');
                    want.extend_from_slice(&piece);
                    want.push(b' ');
                    if let Some(reply) = reply {
                        want.extend_from_slice(reply);
                        want.push(b' ');
                    }
                    let sizes = format!("{} {}\r\n", headers.len(), headers.len() + piece_len);
                    want.extend_from_slice(sizes.as_bytes());
                    want.extend_from_slice(&headers);
                    want.extend_from_slice(&piece);
                    want.extend_from_slice(b"\r\n");
                    let mut got = Vec::new();
                    write_hmsg(&mut got, &piece, &piece, reply, &headers, &piece);
                    assert_eq!(got, want, "{piece_len} {payload_len}");
                }
            }
        }
    }

    #[test]
    fn hmsg_exact_bytes() {
        let mut out = Vec::new();
        write_hmsg(&mut out, b"foo", b"1", None, b"NATS/1.0\r\n\r\n", b"hi");
        // As nats-server 2.15.1 delivered it.
        assert_eq!(out, b"HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        out.clear();
        let headers = b"NATS/1.0 503\r\nNats-Subject: req\r\n\r\n";
        write_hmsg(&mut out, b"_INBOX.r", b"9", Some(b"r"), headers, b"");
        let mut expected = b"HMSG _INBOX.r 9 r 35 35\r\n".to_vec();
        expected.extend_from_slice(headers);
        expected.extend_from_slice(b"\r\n");
        assert_eq!(
            headers.len(),
            32 + b"req".len(),
            "no-responders header size"
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn template_writes_what_the_writers_write() {
        let mut template = MsgTemplate::default();
        let payload_lens = [0usize, 1, 16, 1000];
        for subject in [&b"a"[..], b"foo.bar.baz"] {
            for reply in [None, Some(&b"_INBOX.abc"[..])] {
                for headers in [None, Some(&b"NATS/1.0\r\nA: b\r\n\r\n"[..])] {
                    for &payload_len in &payload_lens {
                        let payload = vec![b'p'; payload_len];
                        template.render(subject, reply, headers, &payload);
                        for sid in [&b"1"[..], b"12345678901234567890"] {
                            let mut want = b"?".to_vec();
                            match headers {
                                None => write_msg(&mut want, subject, sid, reply, &payload),
                                Some(h) => write_hmsg(&mut want, subject, sid, reply, h, &payload),
                            }
                            let mut got = b"?".to_vec();
                            template.write(&mut got, sid);
                            assert_eq!(got, want);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn msg_len_is_written_len() {
        let subjects: [&[u8]; 3] = [b"a", b"foo.bar.baz", &[b's'; 300]];
        let payload_lens = [0usize, 1, 9, 10, 99, 100, 1000, 65536];
        for subject in subjects {
            for reply in [None, Some(&b"_INBOX.abc"[..])] {
                for &payload_len in &payload_lens {
                    let payload = vec![b'p'; payload_len];
                    let mut out = vec![b'?'; 3];
                    write_msg(&mut out, subject, b"17", reply, &payload);
                    assert_eq!(
                        out.len() - 3,
                        msg_len(subject, b"17", reply, None, payload_len)
                    );
                    for headers_len in [0usize, 12, 100] {
                        let headers = vec![b'h'; headers_len];
                        let mut out = Vec::new();
                        write_hmsg(&mut out, subject, b"17", reply, &headers, &payload);
                        let expected =
                            msg_len(subject, b"17", reply, Some(headers_len), payload_len);
                        assert_eq!(out.len(), expected);
                    }
                }
            }
        }
    }

    /// A test-only MSG/HMSG reader, independent of the client parser.
    fn read_msg(bytes: &[u8]) -> (Vec<&[u8]>, &[u8], usize) {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap();
        let fields: Vec<&[u8]> = bytes[..line_end].split(|&b| b == b' ').collect();
        let total = parse_size(fields[fields.len() - 1]).unwrap();
        let body = &bytes[line_end + 2..line_end + 2 + total];
        assert_eq!(&bytes[line_end + 2 + total..], b"\r\n");
        (fields, body, total)
    }

    #[test]
    fn msg_round_trip() {
        let mut out = Vec::new();
        write_msg(
            &mut out,
            b"orders.new",
            b"7",
            Some(b"reply.to"),
            b"a b\r\nc",
        );
        let (fields, body, _) = read_msg(&out);
        assert_eq!(
            fields,
            [&b"MSG"[..], b"orders.new", b"7", b"reply.to", b"6"]
        );
        assert_eq!(body, b"a b\r\nc");

        out.clear();
        write_hmsg(
            &mut out,
            b"s",
            b"1",
            None,
            b"NATS/1.0\r\nK: V\r\n\r\n",
            b"body",
        );
        let (fields, body, total) = read_msg(&out);
        assert_eq!(fields[..3], [&b"HMSG"[..], b"s", b"1"]);
        let headers_len = parse_size(fields[3]).unwrap();
        assert_eq!(total, headers_len + 4);
        assert_eq!(&body[..headers_len], b"NATS/1.0\r\nK: V\r\n\r\n");
        assert_eq!(&body[headers_len..], b"body");
    }

    #[test]
    fn err_bytes() {
        let mut out = Vec::new();
        write_err(&mut out, &ServerError::MaxPayload);
        write_err(&mut out, &ServerError::ParseError);
        assert_eq!(out, b"-ERR 'Maximum Payload Violation'\r\n");
    }
}

/// The header nats-server adds to a request crossing into another account.
const REQUEST_INFO_HEADER: &[u8] = b"Nats-Request-Info";

/// Appends the header block of a request crossing from account `account` into another, as
/// nats-server's `setHeader` makes it: the request's own block (`headers`, without an
/// earlier `Nats-Request-Info`), or `NATS/1.0` when it had none, then `Nats-Request-Info:
/// {"acc":"<account>","rtt":<ns>,"server":"<name>","cluster":"<name>"}` (`rtt` left out while
/// unknown, `server` and `cluster` when the server is in a cluster: `in_cluster` names both;
/// JetStream places a stream in its requestor's cluster), then the blank line.
pub fn write_request_info_headers(
    out: &mut Vec<u8>,
    headers: Option<&[u8]>,
    account: &str,
    rtt_ns: u64,
    in_cluster: Option<(&str, &str)>,
) {
    match headers.filter(|headers| headers.len() > 2) {
        Some(headers) => {
            let body = &headers[..headers.len() - 2];
            let mut lines = body.split_inclusive(|&byte| byte == b'\n');
            if let Some(first) = lines.next() {
                out.extend_from_slice(first);
            }
            for line in lines {
                let named = line.len() > REQUEST_INFO_HEADER.len()
                    && line[..REQUEST_INFO_HEADER.len()].eq_ignore_ascii_case(REQUEST_INFO_HEADER)
                    && line[REQUEST_INFO_HEADER.len()] == b':';
                if !named {
                    out.extend_from_slice(line);
                }
            }
        }
        None => out.extend_from_slice(b"NATS/1.0\r\n"),
    }
    out.extend_from_slice(REQUEST_INFO_HEADER);
    out.extend_from_slice(b": {\"acc\":");
    super::json::write_json_string(out, account);
    if rtt_ns > 0 {
        out.extend_from_slice(b",\"rtt\":");
        write_u64(out, rtt_ns);
    }
    if let Some((server, cluster)) = in_cluster {
        out.extend_from_slice(b",\"server\":");
        super::json::write_json_string(out, server);
        out.extend_from_slice(b",\"cluster\":");
        super::json::write_json_string(out, cluster);
    }
    out.extend_from_slice(b"}\r\n\r\n");
}

#[cfg(test)]
mod request_info_tests {
    use super::*;

    #[test]
    fn request_info_is_added_to_the_headers_and_replaces_an_earlier_one() {
        let mut out = Vec::new();
        write_request_info_headers(&mut out, None, "A", 0, None);
        assert_eq!(
            out,
            b"NATS/1.0\r\nNats-Request-Info: {\"acc\":\"A\"}\r\n\r\n"
        );
        out.clear();
        let headers = b"NATS/1.0\r\nX: 1\r\nnats-request-info: forged\r\n\r\n";
        write_request_info_headers(&mut out, Some(headers), "B", 1500, None);
        assert_eq!(
            out,
            b"NATS/1.0\r\nX: 1\r\nNats-Request-Info: {\"acc\":\"B\",\"rtt\":1500}\r\n\r\n"
        );
        out.clear();
        write_request_info_headers(&mut out, None, "$G", 0, Some(("N", "c1")));
        assert_eq!(
            out,
            b"NATS/1.0\r\nNats-Request-Info: {\"acc\":\"$G\",\"server\":\"N\",\"cluster\":\"c1\"}\r\n\r\n"
        );
    }
}
