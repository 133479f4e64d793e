//! The TLS record layer after the handshake, done by the shard itself: records are decrypted
//! in place in the provided receive buffers (their plaintext goes to the parser where it lies)
//! and encrypted in place in the buffer the send names, with ring's AEADs and the traffic
//! secrets rustls hands over once its handshake is done (`dangerous_into_kernel_connection`,
//! rustls's API for kTLS, which is what this is in user space: this kernel has no kTLS).
//! rustls's own record layer copies each record's plaintext into a buffer of its own and
//! allocates one per record, both ways; at 1 KiB messages those copies were a tenth of the
//! server's time.
//!
//! What rustls keeps doing: the key schedule (`KernelConnection::update_tx_secret`,
//! `update_rx_secret` on a TLS 1.3 KeyUpdate). What this does: sequence numbers, nonces,
//! additional data, TLS 1.3's inner content type and padding, TLS 1.2's explicit GCM nonce,
//! alerts (close_notify ends the input; any other is an error) and a key update before the
//! cipher's confidentiality limit (TLS 1.3; a TLS 1.2 connection is closed there, as rustls
//! does).
//!
//! Nonce rule (the one property everything here depends on): each direction's sequence number
//! goes up by one for every record sealed or opened and is never reused with the same key; a
//! key update starts the new key at the number rustls gives (0).

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets, ProtocolVersion, SupportedCipherSuite};

use super::tls::{Event, Received};

const HEADER_BYTES: usize = 5;
const TAG_BYTES: usize = 16;
/// TLS 1.2 GCM's explicit nonce, sent before each record's ciphertext.
const EXPLICIT_NONCE_BYTES: usize = 8;
/// Plaintext per record at most (RFC 8446 §5.1).
const PLAINTEXT_BYTES_MAX: usize = 16_384;
const APPLICATION_DATA: u8 = 23;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
/// The handshake message type of a TLS 1.3 KeyUpdate.
const KEY_UPDATE: u8 = 24;
/// `legacy_record_version`: TLS 1.2 on the wire for both versions.
const RECORD_VERSION: [u8; 2] = [3, 3];

/// One direction's key and where its sequence is.
struct Direction {
    key: LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    seq: u64,
}

impl Direction {
    fn new((seq, secrets): (u64, ConnectionTrafficSecrets)) -> Result<Direction, rustls::Error> {
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

/// The record layer of one established connection.
pub struct Records {
    kernel: KernelConnection<ServerConnectionData>,
    tls13: bool,
    rx: Direction,
    tx: Direction,
    /// Records one key may seal (the suite's confidentiality limit).
    tx_limit: u64,
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

impl Records {
    pub fn new(
        secrets: ExtractedSecrets,
        kernel: KernelConnection<ServerConnectionData>,
    ) -> Result<Records, rustls::Error> {
        let tls13 = kernel.protocol_version() == ProtocolVersion::TLSv1_3;
        let tx_limit = match kernel.negotiated_cipher_suite() {
            SupportedCipherSuite::Tls13(suite) => suite.common.confidentiality_limit,
            SupportedCipherSuite::Tls12(suite) => suite.common.confidentiality_limit,
        };
        Ok(Records {
            tls13,
            rx: Direction::new(secrets.rx)?,
            tx: Direction::new(secrets.tx)?,
            tx_limit,
            kernel,
        })
    }

    /// Opens the whole records at the front of `buffer` in place, calling `on_event` with each
    /// one's plaintext; returns how many bytes they took (the rest is an incomplete record).
    /// A KeyUpdate that asks for one back has ours sealed into `wire`.
    pub fn open_records(
        &mut self,
        buffer: &mut [u8],
        on_event: &mut dyn FnMut(Event<'_>),
        received: &mut Received,
        wire: &mut Vec<u8>,
    ) -> Result<usize, rustls::Error> {
        let mut at = 0;
        loop {
            let Some(header) = buffer.get(at..at + HEADER_BYTES) else {
                return Ok(at);
            };
            let header: [u8; HEADER_BYTES] = header.try_into().expect("five bytes");
            let body = usize::from(u16::from_be_bytes([header[3], header[4]]));
            if body > PLAINTEXT_BYTES_MAX + 2048 {
                return Err(rustls::Error::InvalidMessage(
                    rustls::InvalidMessage::MessageTooLarge,
                ));
            }
            let end = at + HEADER_BYTES + body;
            if end > buffer.len() {
                return Ok(at);
            }
            let (content_type, plaintext) =
                self.open(&header, &mut buffer[at + HEADER_BYTES..end])?;
            if plaintext.len() > PLAINTEXT_BYTES_MAX {
                return Err(rustls::Error::PeerSentOversizedRecord);
            }
            match content_type {
                APPLICATION_DATA if !received.peer_closed => on_event(Event::Plaintext(plaintext)),
                ALERT => match plaintext {
                    // close_notify: nothing more comes.
                    [_, 0] => received.peer_closed = true,
                    // user_canceled, a warning (RFC 8446 §6.1), comes before a close_notify.
                    [1, 90] => {}
                    [_, description] => {
                        return Err(rustls::Error::AlertReceived((*description).into()))
                    }
                    _ => return Err(rustls::Error::DecryptError),
                },
                HANDSHAKE if self.tls13 => {
                    self.key_update(plaintext, wire)?;
                    received.output |= !wire.is_empty();
                }
                _ => {
                    return Err(rustls::Error::InappropriateMessage {
                        expect_types: vec![rustls::ContentType::ApplicationData],
                        got_type: content_type.into(),
                    })
                }
            }
            at = end;
        }
    }

    /// Decrypts one record's body in place: its content type and plaintext.
    fn open<'b>(
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

    /// A TLS 1.3 post-handshake message: only KeyUpdate comes to a server. Its receiving key
    /// moves on; when the client asks, ours does too, after a KeyUpdate of ours (sealed under
    /// the old key into `wire`, which goes out before anything sealed after it).
    fn key_update(&mut self, message: &[u8], wire: &mut Vec<u8>) -> Result<(), rustls::Error> {
        let [KEY_UPDATE, 0, 0, 1, request @ (0 | 1)] = *message else {
            return Err(rustls::Error::InappropriateHandshakeMessage {
                expect_types: vec![rustls::HandshakeType::KeyUpdate],
                got_type: message.first().copied().unwrap_or_default().into(),
            });
        };
        self.rx = Direction::new(self.kernel.update_rx_secret()?)?;
        if request == 1 {
            self.update_tx(wire)?;
        }
        Ok(())
    }

    /// Sends a KeyUpdate (not asking for one back) under the current key and moves to the next.
    fn update_tx(&mut self, out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        self.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out);
        self.tx = Direction::new(self.kernel.update_tx_secret()?)?;
        Ok(())
    }

    /// Lowers the confidentiality limit (tests of the key update).
    #[cfg(test)]
    pub fn set_tx_limit(&mut self, records: u64) {
        self.tx_limit = records;
    }

    /// Seals `plaintext` as application data records onto the end of `out`.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        let records = plaintext.len().div_ceil(PLAINTEXT_BYTES_MAX);
        out.reserve(plaintext.len() + records * (HEADER_BYTES + EXPLICIT_NONCE_BYTES + TAG_BYTES));
        for chunk in plaintext.chunks(PLAINTEXT_BYTES_MAX) {
            if self.tx.seq >= self.tx_limit {
                if !self.tls13 {
                    // No key update in TLS 1.2: rustls closes the connection here too.
                    return Err(rustls::Error::EncryptError);
                }
                self.update_tx(out)?;
            }
            self.seal_record(APPLICATION_DATA, chunk, out);
        }
        Ok(())
    }

    /// One record of `content_type` holding `plaintext` (at most `PLAINTEXT_BYTES_MAX`).
    fn seal_record(&mut self, content_type: u8, plaintext: &[u8], out: &mut Vec<u8>) {
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
