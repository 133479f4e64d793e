//! Following an account's links when one of its clients publishes (see `account::links`):
//! a stream another account imports is delivered there too, under the importer's subject; a
//! request to a service this account imports goes into the exporting account, with a reply
//! subject of that account whose responses come back to the requestor's reply subject; a
//! response published on an exporter's reply subject goes back to the requestor's account.
//! Reached only from publishes in accounts that have links (`AccountView::links`), so other
//! traffic pays one branch for it.

use std::sync::Arc;
use std::time::Instant;

use super::core::Core;
use crate::account::links::ResponseRoute;
use crate::account::{AccountId, ResponseType};
use crate::proto::Message;

/// The header nats-server adds to a request crossing into another account.
const REQUEST_INFO_HEADER: &[u8] = b"Nats-Request-Info";
/// nats-server's header block first line.
const HEADER_LINE: &[u8] = b"NATS/1.0\r\n";

impl Core {
    /// Follows the links of `account` for `message`, published by the client in `slot`;
    /// `depth` counts the accounts it already crossed (bounded, so no cycle of imports can
    /// loop). Returns whether anyone is to receive it across the links.
    pub(super) fn follow_links(
        &mut self,
        account: AccountId,
        message: Message<'_>,
        slot: u32,
        depth: usize,
    ) -> bool {
        if depth >= crate::limits::ACCOUNT_LINK_DEPTH_MAX {
            return false;
        }
        let Some(links) = self.accounts[account.index()].links.clone() else {
            return false;
        };
        let mut delivered = false;
        if links.answers_requests {
            let here = Arc::clone(&self.accounts[account.index()].account);
            if message.subject.starts_with(&here.response_prefix) {
                if let Some(route) = here.responses.take(message.subject) {
                    let response = Message {
                        subject: &route.reply,
                        reply: None,
                        ..message
                    };
                    delivered |= self.publish_into(route.account, response, slot, depth + 1);
                }
            }
        }
        let mut subject = Vec::new();
        for link in links
            .streams_out
            .iter()
            .filter(|link| link.carries(message.subject))
        {
            subject.clear();
            link.rewrite
                .apply(&link.filter, message.subject, &mut subject);
            let imported = Message {
                subject: &subject,
                ..message
            };
            delivered |= self.publish_into(link.importer, imported, slot, depth + 1);
        }
        for link in links
            .services_in
            .iter()
            .filter(|link| link.carries(message.subject))
        {
            subject.clear();
            link.rewrite
                .apply(&link.filter, message.subject, &mut subject);
            let exporter = Arc::clone(&self.accounts[link.exporter.index()].account);
            let reply = message.reply.map(|reply| {
                let mut routed = exporter.response_prefix.to_vec();
                routed.extend_from_slice(&crate::account::random_token(10));
                exporter.responses.insert(
                    routed.clone().into_boxed_slice(),
                    ResponseRoute {
                        account,
                        reply: reply.into(),
                        singleton: link.response_type == ResponseType::Singleton,
                        expires: Instant::now() + link.threshold,
                    },
                );
                routed
            });
            let headers = self.with_request_info(account, slot, message.headers);
            let request = Message {
                subject: &subject,
                reply: reply.as_deref(),
                headers: Some(&headers),
                payload: message.payload,
            };
            delivered |= self.publish_into(link.exporter, request, slot, depth + 1);
        }
        delivered
    }

    /// Delivers `message` in `account` as if published there (and follows that account's
    /// links in turn).
    fn publish_into(
        &mut self,
        account: AccountId,
        message: Message<'_>,
        slot: u32,
        depth: usize,
    ) -> bool {
        let mut delivered = self.route(account, message, slot);
        if self.accounts[account.index()].links.is_some() {
            delivered |= self.follow_links(account, message, slot, depth);
        }
        delivered
    }

    /// The header block of a request crossing from `account` into another: the request's
    /// own headers (without an earlier `Nats-Request-Info`), then `Nats-Request-Info` with
    /// the requestor's account and round-trip time, as nats-server adds it.
    fn with_request_info(&self, account: AccountId, slot: u32, headers: Option<&[u8]>) -> Vec<u8> {
        let mut block = Vec::new();
        match headers.filter(|headers| headers.len() > 2) {
            Some(headers) => {
                let body = &headers[..headers.len() - 2];
                let mut lines = body.split_inclusive(|&byte| byte == b'\n');
                if let Some(first) = lines.next() {
                    block.extend_from_slice(first);
                }
                for line in lines {
                    let named = line.len() > REQUEST_INFO_HEADER.len()
                        && line[..REQUEST_INFO_HEADER.len()]
                            .eq_ignore_ascii_case(REQUEST_INFO_HEADER)
                        && line[REQUEST_INFO_HEADER.len()] == b':';
                    if !named {
                        block.extend_from_slice(line);
                    }
                }
            }
            None => block.extend_from_slice(HEADER_LINE),
        }
        block.extend_from_slice(REQUEST_INFO_HEADER);
        block.extend_from_slice(b": {\"acc\":");
        crate::proto::json::write_json_string(&mut block, self.settings.account_name(account));
        let rtt_ns = self.conns.get(slot).map_or(0, |conn| conn.rtt_ns);
        if rtt_ns > 0 {
            block.extend_from_slice(b",\"rtt\":");
            crate::proto::writer::write_u64(&mut block, rtt_ns);
        }
        block.extend_from_slice(b"}\r\n\r\n");
        block
    }
}
