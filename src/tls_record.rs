//! The TLS record layer with keys rustls handed over (its kTLS API): records sealed and
//! opened in place with ring's AEADs, TLS 1.3 and 1.2, AES-GCM and ChaCha20-Poly1305. The
//! shards use it once a client's handshake is done (`shard::tls_records`, which adds the key
//! schedule and alerts); natsring-bench's TLS clients use it to keep up with them.
//!
//! Nonce rule (the one property everything here depends on): each direction's sequence number
//! goes up by one for every record sealed or opened and is never reused with the same key; a
//! new key starts at the number rustls gives.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;

pub const HEADER_BYTES: usize = 5;
const TAG_BYTES: usize = 16;
/// TLS 1.2 GCM's explicit nonce, sent before each record's ciphertext.
const EXPLICIT_NONCE_BYTES: usize = 8;
/// Plaintext per record at most (RFC 8446 §5.1).
pub const PLAINTEXT_BYTES_MAX: usize = 16_384;
/// A record's body at most: the plaintext and what TLS 1.2 may add (RFC 5246 §6.2.3).
pub const BODY_BYTES_MAX: usize = PLAINTEXT_BYTES_MAX + 2_048;
/// What sealing adds to a record at most: header, explicit nonce or inner type, tag.
pub const OVERHEAD_BYTES: usize = HEADER_BYTES + EXPLICIT_NONCE_BYTES + TAG_BYTES;
pub const APPLICATION_DATA: u8 = 23;
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
/// `legacy_record_version`: TLS 1.2 on the wire for both versions.
const RECORD_VERSION: [u8; 2] = [3, 3];

/// One direction's key and where its sequence is.
pub struct Direction {
    pub key: LessSafeKey,
    pub iv: [u8; aead::NONCE_LEN],
    pub seq: u64,
}

impl Direction {
    pub fn new(
        (seq, secrets): (u64, ConnectionTrafficSecrets),
    ) -> Result<Direction, rustls::Error> {
        let (algorithm, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => {
                return Err(rustls::Error::General(
                    "an AEAD natsring does not seal".into(),
                ))
            }
        };
        let key = UnboundKey::new(algorithm, key.as_ref())
            .map_err(|_| rustls::Error::General("a bad traffic key".into()))?;
        Ok(Direction {
            key: LessSafeKey::new(key),
            iv: iv
                .as_ref()
                .try_into()
                .map_err(|_| rustls::Error::General("a bad traffic IV".into()))?,
            seq,
        })
    }

    /// `iv` XOR the sequence number (TLS 1.3, TLS 1.2 ChaCha20, and the explicit part of
    /// TLS 1.2 GCM's as natsring sends it, as rustls does), and the number moves on.
    fn next_nonce(&mut self) -> [u8; aead::NONCE_LEN] {
        let mut nonce = self.iv;
        for (byte, seq) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *byte ^= seq;
        }
        self.seq += 1;
        nonce
    }

    fn is_gcm(&self) -> bool {
        self.key.algorithm() != &aead::CHACHA20_POLY1305
    }
}

/// TLS 1.2's additional data: sequence number, type, version, plaintext length.
fn tls12_aad(seq: u64, content_type: u8, plaintext_len: usize) -> [u8; 13] {
    let mut aad = [0; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = content_type;
    aad[9..11].copy_from_slice(&RECORD_VERSION);
    aad[11..].copy_from_slice(&(plaintext_len as u16).to_be_bytes());
    aad
}

/// Both directions of one connection's records.
pub struct RecordLayer {
    pub tls13: bool,
    pub rx: Direction,
    pub tx: Direction,
}

/// A record whose length is past `BODY_BYTES_MAX`.
fn too_large() -> rustls::Error {
    rustls::Error::InvalidMessage(rustls::InvalidMessage::MessageTooLarge)
}

/// The body length a record header announces (`header` holds at least its five bytes); more
/// than a record may hold is an error.
pub fn body_len(header: &[u8]) -> Result<usize, rustls::Error> {
    let body = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if body > BODY_BYTES_MAX {
        return Err(too_large());
    }
    Ok(body)
}

impl RecordLayer {
    /// The whole records at the front of `buffer`, opened in place one by one and handed to
    /// `on_record` (content type, plaintext); returns how many bytes they took (the rest is an
    /// incomplete record). Stops at the first error, `on_record`'s included.
    pub fn open_records(
        &mut self,
        buffer: &mut [u8],
        mut on_record: impl FnMut(&mut Self, u8, &mut [u8]) -> Result<(), rustls::Error>,
    ) -> Result<usize, rustls::Error> {
        let mut at = 0;
        loop {
            let Some(header) = buffer.get(at..at + HEADER_BYTES) else {
                return Ok(at);
            };
            let header: [u8; HEADER_BYTES] = header.try_into().expect("five bytes");
            let end = at + HEADER_BYTES + body_len(&header)?;
            if end > buffer.len() {
                return Ok(at);
            }
            let (content_type, plaintext) =
                self.open(&header, &mut buffer[at + HEADER_BYTES..end])?;
            if plaintext.len() > PLAINTEXT_BYTES_MAX {
                return Err(rustls::Error::PeerSentOversizedRecord);
            }
            on_record(self, content_type, plaintext)?;
            at = end;
        }
    }

    /// Decrypts one record's body in place: its content type and plaintext.
    pub fn open<'b>(
        &mut self,
        header: &[u8; HEADER_BYTES],
        body: &'b mut [u8],
    ) -> Result<(u8, &'b mut [u8]), rustls::Error> {
        let decrypt_error = |_| rustls::Error::DecryptError;
        if self.tls13 {
            if header[0] != APPLICATION_DATA {
                return Err(rustls::Error::DecryptError);
            }
            let nonce = Nonce::assume_unique_for_key(self.rx.next_nonce());
            let inner = self
                .rx
                .key
                .open_in_place(nonce, Aad::from(*header), body)
                .map_err(decrypt_error)?;
            // TLSInnerPlaintext: content, its type, then zeros.
            let Some(last) = inner.iter().rposition(|&byte| byte != 0) else {
                return Err(rustls::Error::DecryptError);
            };
            let content_type = inner[last];
            return Ok((content_type, &mut inner[..last]));
        }
        let seq = self.rx.seq;
        if self.rx.is_gcm() {
            let Some(plaintext_len) = body.len().checked_sub(EXPLICIT_NONCE_BYTES + TAG_BYTES)
            else {
                return Err(rustls::Error::DecryptError);
            };
            let mut nonce = self.rx.iv;
            nonce[4..].copy_from_slice(&body[..EXPLICIT_NONCE_BYTES]);
            self.rx.seq += 1;
            let plaintext = self
                .rx
                .key
                .open_within(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(tls12_aad(seq, header[0], plaintext_len)),
                    body,
                    EXPLICIT_NONCE_BYTES..,
                )
                .map_err(decrypt_error)?;
            return Ok((header[0], plaintext));
        }
        let Some(plaintext_len) = body.len().checked_sub(TAG_BYTES) else {
            return Err(rustls::Error::DecryptError);
        };
        let nonce = Nonce::assume_unique_for_key(self.rx.next_nonce());
        let plaintext = self
            .rx
            .key
            .open_in_place(
                nonce,
                Aad::from(tls12_aad(seq, header[0], plaintext_len)),
                body,
            )
            .map_err(decrypt_error)?;
        Ok((header[0], plaintext))
    }

    /// Seals `plaintext` as records of `content_type` onto the end of `out`.
    pub fn seal(&mut self, content_type: u8, plaintext: &[u8], out: &mut Vec<u8>) {
        let records = plaintext.len().div_ceil(PLAINTEXT_BYTES_MAX);
        out.reserve(plaintext.len() + records * OVERHEAD_BYTES);
        for chunk in plaintext.chunks(PLAINTEXT_BYTES_MAX) {
            self.seal_record(content_type, chunk, out);
        }
    }

    /// One record of `content_type` holding `plaintext` (at most `PLAINTEXT_BYTES_MAX`).
    pub fn seal_record(&mut self, content_type: u8, plaintext: &[u8], out: &mut Vec<u8>) {
        let tls12_gcm = !self.tls13 && self.tx.is_gcm();
        let body = plaintext.len()
            + usize::from(self.tls13)
            + if tls12_gcm { EXPLICIT_NONCE_BYTES } else { 0 }
            + TAG_BYTES;
        let outer_type = if self.tls13 {
            APPLICATION_DATA
        } else {
            content_type
        };
        let [high, low] = (body as u16).to_be_bytes();
        let header = [outer_type, RECORD_VERSION[0], RECORD_VERSION[1], high, low];
        out.extend_from_slice(&header);
        let seq = self.tx.seq;
        let nonce = self.tx.next_nonce();
        if tls12_gcm {
            out.extend_from_slice(&nonce[4..]);
        }
        let start = out.len();
        out.extend_from_slice(plaintext);
        let nonce = Nonce::assume_unique_for_key(nonce);
        let sealed = if self.tls13 {
            out.push(content_type);
            let aad = Aad::from(header);
            self.tx
                .key
                .seal_in_place_separate_tag(nonce, aad, &mut out[start..])
        } else {
            let aad = Aad::from(tls12_aad(seq, content_type, plaintext.len()));
            self.tx
                .key
                .seal_in_place_separate_tag(nonce, aad, &mut out[start..])
        };
        let tag = sealed.expect("a record within the AEAD's limits");
        out.extend_from_slice(tag.as_ref());
    }
}
