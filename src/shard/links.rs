//! Following an account's links when one of its clients publishes (see `account::links`):
//! a stream another account imports is delivered there too, under the importer's subject; a
//! request to a service this account imports goes into the exporting account, with a reply
//! subject of that account whose responses come back to the requestor's reply subject; a
//! response published on an exporter's reply subject goes back to the requestor's account.
//! Reached only from publishes in accounts that have links (`AccountView::links`), so other
//! traffic pays one branch for it.

use std::time::Instant;

use super::core::Core;
use crate::account::links::ResponseRoute;
use crate::account::{AccountId, ResponseType};
use crate::proto::Message;

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
            delivered |= self.follow_response(account, message, slot, depth);
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
            // The exporter's mappings apply to the request on its way in, as in nats-server.
            let mut mapped = Vec::new();
            let (accounts, rng) = (&self.accounts, &mut self.rng);
            if let Some(table) = accounts[link.exporter.index()].mappings.as_deref() {
                let mut random = || super::core::next_random(rng) as u32;
                if table.map(&subject, &mut random, &mut mapped).is_some() {
                    std::mem::swap(&mut subject, &mut mapped);
                }
            }
            let reply = message.reply.map(|reply| {
                let exporter = &self.accounts[link.exporter.index()].account;
                let mut routed = exporter.response_prefix.to_vec();
                let random = self.random();
                routed.extend(reply_token(random));
                let exporter = &self.accounts[link.exporter.index()].account;
                exporter.responses.insert(
                    routed.clone().into_boxed_slice(),
                    ResponseRoute {
                        account,
                        reply: reply.into(),
                        singleton: link.response_type == ResponseType::Singleton,
                        threshold: link.threshold,
                        expires: Instant::now() + link.threshold,
                    },
                );
                routed
            });
            let mut headers = std::mem::take(&mut self.scratch);
            headers.clear();
            let rtt_ns = self.conns.get(slot).map_or(0, |conn| conn.rtt_ns);
            let info = &self.settings.info;
            crate::proto::writer::write_request_info_headers(
                &mut headers,
                message.headers,
                self.settings.account_name(account),
                rtt_ns,
                info.cluster
                    .as_deref()
                    .map(|cluster| (info.server_name.as_str(), cluster)),
            );
            let request = Message {
                subject: &subject,
                reply: reply.as_deref(),
                headers: Some(&headers),
                payload: message.payload,
            };
            let taken = self.publish_into(link.exporter, request, slot, depth + 1);
            self.scratch = headers;
            if !taken {
                // Nobody got the request: no response will come (nats-server drops the
                // route at once too).
                if let Some(routed) = &reply {
                    self.accounts[link.exporter.index()]
                        .account
                        .responses
                        .remove(routed);
                }
            }
            delivered |= taken;
        }
        delivered
    }

    /// A response published on the response prefix of `account` (which answers requests
    /// that crossed into it) goes back to the requestor's account and reply subject. Also for a
    /// response that came in on a cluster route (`deliver_routed`). Returns whether anyone is
    /// to receive it.
    pub(super) fn follow_response(
        &mut self,
        account: AccountId,
        message: Message<'_>,
        slot: u32,
        depth: usize,
    ) -> bool {
        let here = &self.accounts[account.index()].account;
        if !message.subject.starts_with(&here.response_prefix) {
            return false;
        }
        // An empty message ends a stream of responses (nats-server's end marker).
        let last = message.payload.is_empty() && message.headers.is_none();
        let Some(route) = here.responses.take(message.subject, last) else {
            return false;
        };
        let response = Message {
            subject: &route.reply,
            reply: None,
            ..message
        };
        self.publish_into(route.account, response, slot, depth + 1)
    }

    /// Delivers `message` in `account` as if published there (and follows that account's
    /// links in turn). An account this shard does not know yet (a response route made by a
    /// shard that applied a reload first) receives nothing.
    fn publish_into(
        &mut self,
        account: AccountId,
        message: Message<'_>,
        slot: u32,
        depth: usize,
    ) -> bool {
        if account.index() >= self.accounts.len() {
            return false;
        }
        let mut delivered = self.route(account, message, slot);
        if self.accounts[account.index()].links.is_some() {
            delivered |= self.follow_links(account, message, slot, depth);
        }
        delivered
    }
}

/// The random end of a routed reply subject: ten characters of nats-server's reply alphabet
/// from one draw of the shard's generator.
fn reply_token(mut random: u64) -> impl Iterator<Item = u8> {
    const DIGITS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..10).map(move |_| {
        let digit = DIGITS[(random % 62) as usize];
        random /= 62;
        digit
    })
}
