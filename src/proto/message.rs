//! The one message type: what a publisher sent and every subscriber's `MSG`/`HMSG` is made of,
//! borrowed from wherever it lies (a receive buffer, a carry buffer, a cross-shard frame). The
//! parser produces it, delivery and the fan-out templates write it, and a cross-shard frame is
//! encoded from it and decoded back into it as is.

/// A message's parts, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// The header block (`NATS/1.0\r\n...\r\n\r\n`) of an `HPUB`; None for a `PUB`. As parsed,
    /// an `HPUB` with an empty block is `Some(&[])`; delivery treats it as a plain message
    /// (`without_empty_headers`).
    pub headers: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// The message as delivered: nats-server keys `HMSG` on a header size above zero
    /// (`pa.hdr > 0`), so an `HPUB` with an empty header block goes out as a plain `MSG`.
    #[inline]
    pub fn without_empty_headers(self) -> Message<'a> {
        Message {
            headers: self.headers.filter(|headers| !headers.is_empty()),
            ..self
        }
    }

    /// Bytes of headers and payload together (what `max_payload` bounds and counters count).
    #[inline]
    pub fn body_len(&self) -> usize {
        self.payload.len() + self.headers.map_or(0, <[u8]>::len)
    }
}
