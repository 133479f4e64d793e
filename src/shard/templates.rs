//! A message's MSG or HMSG frame, rendered once when a shard delivers it to several subscribers.
//!
//! A shard delivers each published message to its own subscribers one by one, and their frames
//! differ only in the sid. So the frame is rendered once into a template (`MsgTemplate`) and
//! copied with each subscriber's sid: at the first delivery when the caller expects several,
//! else at the second. A message delivered once (1 → 1, a queue group) is written directly, as
//! before.
//!
//! Invariant: `reset` is called before the deliveries of each new message, so a template is
//! only ever written for the message it was rendered from (checked in debug builds). The
//! templates live in the shard and are used in place: moving them out and back for each message
//! cost 7% more instructions per 1 → 1 publish.

use crate::proto::writer::{write_msg_or_hmsg, MsgTemplate};
use crate::proto::Message;

/// Bodies (headers and payload) up to this size are rendered into a template. A larger body is
/// written directly to each subscriber: rendering would copy it once more to save only a few
/// header pieces.
const TEMPLATE_BODY_BYTES_MAX: usize = 4096;

/// The frames of the message being delivered, as templates: index 0 is the MSG form, 1 the
/// HMSG form (a subscriber that did not ask for headers gets the MSG form of a message that has
/// them).
#[derive(Debug, Default)]
pub struct Templates {
    forms: [Form; 2],
    /// Render at the first delivery (the caller expects more than one).
    render_first: bool,
    /// Counts `reset`s: which message the templates are for (for the debug check).
    message: u64,
}

#[derive(Debug, Default)]
struct Form {
    state: State,
    template: MsgTemplate,
    /// `Templates::message` when the template was rendered, for the debug check that `reset`
    /// was not forgotten (addresses would not do: receive buffers and queue slots are reused).
    rendered_for: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Exactly when this form was not written since the last `reset`.
    #[default]
    Unused,
    /// Exactly when this form was written once, directly, since the last `reset`.
    WrittenOnce,
    /// Exactly when the template holds this form of the current message.
    Rendered,
    /// Written directly each time: the body is too large for a template.
    Direct,
}

impl Templates {
    /// Forgets the previous message: call before delivering a new one, with whether it is
    /// expected to reach more than one subscriber here (a hint: a match result's count may
    /// include subscribers on other shards; a wrong guess costs one copy of the body).
    #[inline]
    pub fn reset(&mut self, several: bool) {
        for form in &mut self.forms {
            form.state = State::Unused;
        }
        self.render_first = several;
        self.message = self.message.wrapping_add(1);
    }

    /// Appends `message`'s frame for a subscriber with `sid`; HMSG when `with_headers` and the
    /// message has headers, MSG otherwise.
    #[inline(always)]
    pub fn write(
        &mut self,
        out: &mut Vec<u8>,
        message: Message<'_>,
        sid: &[u8],
        with_headers: bool,
    ) {
        let headers = message.headers.filter(|_| with_headers);
        let form = &mut self.forms[usize::from(headers.is_some())];
        match form.state {
            State::Rendered => {
                debug_assert_eq!(
                    form.rendered_for, self.message,
                    "reset before a new message"
                );
                form.template.write(out, sid);
            }
            State::Unused if !self.render_first => {
                form.state = State::WrittenOnce;
                write_direct(out, message, headers, sid);
            }
            State::Direct => write_direct(out, message, headers, sid),
            State::Unused | State::WrittenOnce => {
                form.render_and_write(out, message, headers, sid, self.message)
            }
        }
    }
}

impl Form {
    /// Renders the template (or, for a large body, settles on writing directly) and writes.
    #[inline(never)]
    fn render_and_write(
        &mut self,
        out: &mut Vec<u8>,
        message: Message<'_>,
        headers: Option<&[u8]>,
        sid: &[u8],
        for_message: u64,
    ) {
        let body = message.payload.len() + headers.map_or(0, <[u8]>::len);
        if body > TEMPLATE_BODY_BYTES_MAX {
            self.state = State::Direct;
            write_direct(out, message, headers, sid);
            return;
        }
        self.template
            .render(message.subject, message.reply, headers, message.payload);
        self.rendered_for = for_message;
        self.state = State::Rendered;
        self.template.write(out, sid);
    }
}

fn write_direct(out: &mut Vec<u8>, message: Message<'_>, headers: Option<&[u8]>, sid: &[u8]) {
    write_msg_or_hmsg(
        out,
        message.subject,
        sid,
        message.reply,
        headers,
        message.payload,
    );
}
