//! The TLS record layer of a connection after its handshake, done by the shard itself:
//! records are opened in place in the provided receive buffers (their plaintext goes to the
//! parser where it lies) and sealed in place in the buffer the send names (`crate::tls_record`),
//! with the traffic secrets rustls hands over once its handshake is done
//! (`dangerous_into_kernel_connection`, rustls's API for kTLS, which this is in user space:
//! this kernel has no kTLS). rustls's own record layer copies each record's plaintext into a
//! buffer of its own and allocates one per record, both ways: at 1 KiB messages, with those
//! copies, a delivered message cost 1.6 times what it costs now (bench.py's tls-pubsub-1k).
//!
//! What rustls keeps doing: the key schedule (`KernelConnection::update_tx_secret`,
//! `update_rx_secret` on a TLS 1.3 KeyUpdate). What this adds to the record layer: alerts
//! (close_notify ends the input; any other is an error), KeyUpdate both ways, and a key update
//! of ours before the cipher's confidentiality limit (TLS 1.3; a TLS 1.2 connection is closed
//! there, as rustls does). On the client side (a route this server dialed) the server's TLS 1.3
//! session tickets are read and dropped: routes do not resume sessions.

use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ExtractedSecrets, ProtocolVersion, SupportedCipherSuite};

use super::tls::{Event, Received};
use crate::tls_record::{Direction, RecordLayer, ALERT, APPLICATION_DATA, HANDSHAKE};

/// The handshake message type of a TLS 1.3 KeyUpdate.
const KEY_UPDATE: u8 = 24;
/// The handshake message type of a TLS 1.3 NewSessionTicket.
const NEW_SESSION_TICKET: u8 = 4;
/// A handshake message's header: its type and its length (3 bytes).
const MESSAGE_HEADER_BYTES: usize = 4;

/// What rustls keeps of a connection once its record layer is ours: the key schedule, for
/// either side.
pub enum Kernel {
    Server(KernelConnection<ServerConnectionData>),
    Client(KernelConnection<ClientConnectionData>),
}

impl Kernel {
    fn negotiated_cipher_suite(&self) -> SupportedCipherSuite {
        match self {
            Kernel::Server(kernel) => kernel.negotiated_cipher_suite(),
            Kernel::Client(kernel) => kernel.negotiated_cipher_suite(),
        }
    }

    fn protocol_version(&self) -> ProtocolVersion {
        match self {
            Kernel::Server(kernel) => kernel.protocol_version(),
            Kernel::Client(kernel) => kernel.protocol_version(),
        }
    }

    fn update_rx_secret(
        &mut self,
    ) -> Result<(u64, rustls::ConnectionTrafficSecrets), rustls::Error> {
        match self {
            Kernel::Server(kernel) => kernel.update_rx_secret(),
            Kernel::Client(kernel) => kernel.update_rx_secret(),
        }
    }

    fn update_tx_secret(
        &mut self,
    ) -> Result<(u64, rustls::ConnectionTrafficSecrets), rustls::Error> {
        match self {
            Kernel::Server(kernel) => kernel.update_tx_secret(),
            Kernel::Client(kernel) => kernel.update_tx_secret(),
        }
    }
}

/// The record layer of one established connection.
pub struct Records {
    layer: RecordLayer,
    kernel: Kernel,
    /// Records one key may seal (the suite's confidentiality limit).
    tx_limit: u64,
}

impl Records {
    pub fn new(secrets: ExtractedSecrets, kernel: Kernel) -> Result<Records, rustls::Error> {
        let tx_limit = match kernel.negotiated_cipher_suite() {
            SupportedCipherSuite::Tls13(suite) => suite.common.confidentiality_limit,
            SupportedCipherSuite::Tls12(suite) => suite.common.confidentiality_limit,
        };
        Ok(Records {
            layer: RecordLayer {
                tls13: kernel.protocol_version() == ProtocolVersion::TLSv1_3,
                rx: Direction::new(secrets.rx)?,
                tx: Direction::new(secrets.tx)?,
            },
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
        let Records { layer, kernel, .. } = self;
        layer.open_records(
            buffer,
            |layer: &mut RecordLayer, content_type, plaintext| {
                match content_type {
                    APPLICATION_DATA if !received.peer_closed => {
                        on_event(Event::Plaintext(plaintext))
                    }
                    APPLICATION_DATA => {}
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
                    HANDSHAKE if layer.tls13 => {
                        post_handshake(layer, kernel, plaintext, wire)?;
                        received.output |= !wire.is_empty();
                    }
                    _ => {
                        return Err(rustls::Error::InappropriateMessage {
                            expect_types: vec![rustls::ContentType::ApplicationData],
                            got_type: content_type.into(),
                        })
                    }
                }
                Ok(())
            },
        )
    }

    /// Seals `plaintext` as application data records onto the end of `out`.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        for chunk in plaintext.chunks(crate::tls_record::PLAINTEXT_BYTES_MAX) {
            if self.layer.tx.seq >= self.tx_limit {
                if !self.layer.tls13 {
                    // No key update in TLS 1.2: rustls closes the connection here too.
                    return Err(rustls::Error::EncryptError);
                }
                update_tx(&mut self.layer, &mut self.kernel, out)?;
            }
            self.layer.seal_record(APPLICATION_DATA, chunk, out);
        }
        Ok(())
    }

    /// A close_notify alert, sealed onto the end of `out`: nothing more comes from us.
    pub fn close_notify(&mut self, out: &mut Vec<u8>) {
        self.layer.seal_record(ALERT, &[1, 0], out);
    }

    /// Lowers the confidentiality limit (tests of the key update).
    #[cfg(test)]
    pub fn set_tx_limit(&mut self, records: u64) {
        self.tx_limit = records;
    }
}

/// The TLS 1.3 post-handshake messages of one record: KeyUpdate (see `key_update`), which must
/// be the record's last, and, to a client, NewSessionTicket (dropped: no resumption). A message
/// cut across records is refused (a peer has no reason to cut these few bytes).
fn post_handshake(
    layer: &mut RecordLayer,
    kernel: &mut Kernel,
    mut messages: &[u8],
    wire: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    while !messages.is_empty() {
        let message = first_message(messages)?;
        match (message[0], &*kernel) {
            (NEW_SESSION_TICKET, Kernel::Client(_)) => {}
            _ => key_update(layer, kernel, message, wire)?,
        }
        messages = &messages[message.len()..];
    }
    Ok(())
}

/// The first handshake message of a record's `messages` (not empty). Refused when it is cut
/// short, and when it is a KeyUpdate that is not the record's last: a key change ends its
/// record (RFC 8446 §5.1: handshake messages must not span key changes), as Go and rustls
/// require, so one record holds at most one KeyUpdate and nothing after it under the old key.
fn first_message(messages: &[u8]) -> Result<&[u8], rustls::Error> {
    let length = match messages.get(..MESSAGE_HEADER_BYTES) {
        Some(&[_, a, b, c]) => usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c),
        _ => usize::MAX,
    };
    let Some(message) = messages.get(..MESSAGE_HEADER_BYTES.saturating_add(length)) else {
        return Err(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::MessageTooShort,
        ));
    };
    if message[0] == KEY_UPDATE && message.len() != messages.len() {
        return Err(rustls::Error::InappropriateHandshakeMessage {
            expect_types: vec![rustls::HandshakeType::KeyUpdate],
            got_type: rustls::HandshakeType::KeyUpdate,
        });
    }
    Ok(message)
}

/// A TLS 1.3 KeyUpdate. Its receiving key moves on; when the peer asks, ours does too, after
/// a KeyUpdate of ours (sealed under the old key into `wire`, which goes out before anything
/// sealed after it).
fn key_update(
    layer: &mut RecordLayer,
    kernel: &mut Kernel,
    message: &[u8],
    wire: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    let [KEY_UPDATE, 0, 0, 1, request @ (0 | 1)] = *message else {
        return Err(rustls::Error::InappropriateHandshakeMessage {
            expect_types: vec![rustls::HandshakeType::KeyUpdate],
            got_type: message.first().copied().unwrap_or_default().into(),
        });
    };
    layer.rx = Direction::new(kernel.update_rx_secret()?)?;
    if request == 1 {
        update_tx(layer, kernel, wire)?;
    }
    Ok(())
}

/// Sends a KeyUpdate (not asking for one back) under the current key and moves to the next.
fn update_tx(
    layer: &mut RecordLayer,
    kernel: &mut Kernel,
    out: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    layer.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out);
    layer.tx = Direction::new(kernel.update_tx_secret()?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: [u8; 5] = [KEY_UPDATE, 0, 0, 1, 1];
    const TICKET: [u8; 6] = [NEW_SESSION_TICKET, 0, 0, 2, 7, 7];

    #[test]
    fn a_key_update_must_end_its_record() {
        assert_eq!(first_message(&UPDATE).unwrap(), UPDATE);
        let two = [UPDATE, UPDATE].concat();
        assert!(first_message(&two).is_err(), "two KeyUpdates in one record");
        let then_ticket = [&UPDATE[..], &TICKET[..]].concat();
        assert!(first_message(&then_ticket).is_err(), "a message after it");
        // A ticket before it is fine: the KeyUpdate still ends the record.
        let ticket_first = [&TICKET[..], &UPDATE[..]].concat();
        assert_eq!(first_message(&ticket_first).unwrap(), TICKET);
        assert_eq!(
            first_message(&ticket_first[TICKET.len()..]).unwrap(),
            UPDATE
        );
    }

    #[test]
    fn a_message_cut_short_is_refused() {
        assert!(first_message(&UPDATE[..4]).is_err());
        assert!(first_message(&TICKET[..5]).is_err());
        assert!(first_message(&[KEY_UPDATE, 0]).is_err());
    }
}
