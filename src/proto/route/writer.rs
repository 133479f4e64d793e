//! Writing route operations into an outbound buffer: `RS+`, `RS-`, `RMSG`/`HMSG`, byte for
//! byte as nats-server 2.15.1 sends them (ROUTES.md §4, §5.1). `PING`/`PONG` are
//! `proto::writer::{PING, PONG}`; `-ERR` is `RouteError::wire()`; INFO and CONNECT are in
//! `route::json`.
//!
//! `account` is `Some` on a legacy or pooled connection and `None` on one dedicated to an
//! account (the same rule as `RouteParser::accounts`). No formatting machinery: integers go
//! through `proto::writer::write_u64`, and each writer reserves its exact length once.

use crate::proto::message::Message;
use crate::proto::writer::write_u64;

/// Appends `RS+ [acc ]subj\r\n`, or with `queue: Some((name, weight))`
/// `RS+ [acc ]subj queue weight\r\n` (the weight is the number of local members of the group;
/// nats-server requires it on every queue RS+).
pub fn write_rs_plus(
    out: &mut Vec<u8>,
    account: Option<&[u8]>,
    subject: &[u8],
    queue: Option<(&[u8], u32)>,
) {
    out.reserve(interest_len(account, subject, queue.map(|(name, _)| name)) + 11);
    out.extend_from_slice(b"RS+ ");
    write_interest(out, account, subject, queue.map(|(name, _)| name));
    if let Some((_, weight)) = queue {
        out.push(b' ');
        write_u64(out, u64::from(weight));
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `RS- [acc ]subj[ queue]\r\n` (no weight).
pub fn write_rs_minus(
    out: &mut Vec<u8>,
    account: Option<&[u8]>,
    subject: &[u8],
    queue: Option<&[u8]>,
) {
    out.reserve(interest_len(account, subject, queue));
    out.extend_from_slice(b"RS- ");
    write_interest(out, account, subject, queue);
    out.extend_from_slice(b"\r\n");
}

/// `RS+ ` / `RS- `, the fields, and `\r\n`, without a weight.
fn interest_len(account: Option<&[u8]>, subject: &[u8], queue: Option<&[u8]>) -> usize {
    4 + account.map_or(0, |account| account.len() + 1)
        + subject.len()
        + queue.map_or(0, |queue| 1 + queue.len())
        + 2
}

/// `[acc ]subj[ queue]`.
fn write_interest(out: &mut Vec<u8>, account: Option<&[u8]>, subject: &[u8], queue: Option<&[u8]>) {
    if let Some(account) = account {
        out.extend_from_slice(account);
        out.push(b' ');
    }
    out.extend_from_slice(subject);
    if let Some(queue) = queue {
        out.push(b' ');
        out.extend_from_slice(queue);
    }
}

/// Appends one routed message for one peer:
/// - `RMSG [acc ]subj [reply ]size\r\n<payload>\r\n` with no `queues`;
/// - `RMSG [acc ]subj + reply q1 q2 size\r\n...` with queues and a reply;
/// - `RMSG [acc ]subj | q1 q2 size\r\n...` with queues and no reply;
/// - `HMSG ... hdr_len total_len\r\n<headers><payload>\r\n` in the same three forms when the
///   message has a non-empty header block (nats-server keys HMSG on a header size above 0).
///
/// `queues` are the groups whose pick landed on this peer. For a peer that did not negotiate
/// headers, pass the message with `headers: None` (nats-server strips them and sends RMSG).
pub fn write_routed_message(
    out: &mut Vec<u8>,
    account: Option<&[u8]>,
    message: &Message<'_>,
    queues: &[&[u8]],
) {
    let message = message.without_empty_headers();
    let len = routed_message_len(account, &message, queues);
    out.reserve(len);
    let before = out.len();
    out.extend_from_slice(if message.headers.is_some() {
        b"HMSG "
    } else {
        b"RMSG "
    });
    if let Some(account) = account {
        out.extend_from_slice(account);
        out.push(b' ');
    }
    out.extend_from_slice(message.subject);
    out.push(b' ');
    if !queues.is_empty() {
        out.extend_from_slice(if message.reply.is_some() {
            b"+ "
        } else {
            b"| "
        });
    }
    if let Some(reply) = message.reply {
        out.extend_from_slice(reply);
        out.push(b' ');
    }
    for queue in queues {
        out.extend_from_slice(queue);
        out.push(b' ');
    }
    if let Some(headers) = message.headers {
        write_u64(out, headers.len() as u64);
        out.push(b' ');
    }
    write_u64(out, message.body_len() as u64);
    out.extend_from_slice(b"\r\n");
    if let Some(headers) = message.headers {
        out.extend_from_slice(headers);
    }
    out.extend_from_slice(message.payload);
    out.extend_from_slice(b"\r\n");
    debug_assert_eq!(out.len() - before, len, "routed_message_len matches");
}

/// Length in bytes of what [`write_routed_message`] appends for these arguments (to check a
/// pending limit before writing).
pub fn routed_message_len(
    account: Option<&[u8]>,
    message: &Message<'_>,
    queues: &[&[u8]],
) -> usize {
    let message = message.without_empty_headers();
    let name = 5; // "RMSG " or "HMSG "
    let account = account.map_or(0, |account| account.len() + 1);
    let indicator = if queues.is_empty() { 0 } else { 2 };
    let reply = message.reply.map_or(0, |reply| reply.len() + 1);
    let queues: usize = queues.iter().map(|queue| queue.len() + 1).sum();
    let headers = message
        .headers
        .map_or(0, |headers| decimal_len(headers.len() as u64) + 1);
    let body = message.body_len();
    name + account
        + message.subject.len()
        + 1
        + indicator
        + reply
        + queues
        + headers
        + decimal_len(body as u64)
        + 2
        + body
        + 2
}

/// Number of decimal digits of `n`.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}
