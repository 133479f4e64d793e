//! The naive reference the trie is checked against: a list of every subscription, and a match
//! that tests each one token by token. Slow and obviously right; tests only.

use super::subject::valid_subscribe_subject;
use super::{MatchResult, QueueGroup, SubHandle};

/// One subscription as the oracle stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) subject: Vec<u8>,
    pub(crate) queue: Option<Vec<u8>>,
    pub(crate) handle: SubHandle,
}

#[derive(Debug, Default)]
pub(crate) struct NaiveSublist {
    pub(crate) entries: Vec<Entry>,
}

use super::subject::pattern_matches;

impl NaiveSublist {
    /// Returns true when added (valid and not already present), like `Sublist::insert` + change.
    pub(crate) fn insert(
        &mut self,
        subject: &[u8],
        queue: Option<&[u8]>,
        handle: SubHandle,
    ) -> bool {
        if !valid_subscribe_subject(subject) {
            return false;
        }
        let entry = Entry {
            subject: subject.to_vec(),
            queue: queue.map(<[u8]>::to_vec),
            handle,
        };
        if self.entries.contains(&entry) {
            return false;
        }
        self.entries.push(entry);
        true
    }

    pub(crate) fn remove(
        &mut self,
        subject: &[u8],
        queue: Option<&[u8]>,
        handle: SubHandle,
    ) -> bool {
        let found = self.entries.iter().position(|entry| {
            entry.subject == subject && entry.queue.as_deref() == queue && entry.handle == handle
        });
        match found {
            Some(index) => {
                self.entries.remove(index);
                true
            }
            None => false,
        }
    }

    pub(crate) fn match_subject(&self, subject: &[u8]) -> MatchResult {
        let mut result = MatchResult::default();
        for entry in self
            .entries
            .iter()
            .filter(|entry| pattern_matches(&entry.subject, subject))
        {
            match &entry.queue {
                None => result.plain.push(entry.handle),
                Some(name) => match result.queues.iter_mut().find(|group| *group.name == **name) {
                    Some(group) => group.members.push(entry.handle),
                    None => result.queues.push(QueueGroup {
                        name: name.as_slice().into(),
                        members: vec![entry.handle],
                    }),
                },
            }
        }
        result
    }
}

/// A match result in a canonical order (plain sorted, groups by name, members sorted), so two
/// results with the same multisets compare equal.
pub(crate) fn canonical(result: &MatchResult) -> MatchResult {
    let mut result = result.clone();
    result.plain.sort_unstable();
    for group in &mut result.queues {
        group.members.sort_unstable();
    }
    result.queues.sort_by(|a, b| a.name.cmp(&b.name));
    result
}

#[cfg(test)]
mod tests {
    use super::pattern_matches;

    #[test]
    fn naive_matching() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"foo", b"foo", true),
            (b"foo", b"bar", false),
            (b"foo.bar", b"foo", false),
            (b"foo", b"foo.bar", false),
            (b"*", b"foo", true),
            (b"*", b"foo.bar", false),
            (b"foo.*", b"foo.bar", true),
            (b"foo.*", b"foo", false),
            (b">", b"foo", true),
            (b">", b"foo.bar.baz", true),
            (b"foo.>", b"foo", false),
            (b"foo.>", b"foo.bar", true),
            (b"foo.>", b"foo.bar.baz", true),
            (b"*.bar.>", b"x.bar.y", true),
            (b"*.bar.>", b"x.bar", false),
            (b"foo*", b"foo*", true),
            (b"foo*", b"foox", false),
            (b"foo.*", b"foo.*", true),
            (b">", b"foo..bar", false),
            (b">", b"", false),
        ];
        for &(pattern, subject, expected) in cases {
            assert_eq!(
                pattern_matches(pattern, subject),
                expected,
                "{pattern:?} {subject:?}"
            );
        }
    }
}
