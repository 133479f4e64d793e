//! Checks that cost milliseconds by design (bcrypt), done off the shards: a shard hands a
//! check here and goes on serving its other clients; the answer comes back to it as a command
//! in its mailbox. One thread, so logins can take at most one core from the shards whatever
//! their rate. What waits is bounded (`limits::VERIFICATIONS_QUEUED_MAX`; past it a check is
//! refused and so is its client), and a check whose connection went away is skipped, not
//! computed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread;

/// What a check is for: a CONNECT waiting for it, or a reload checking a connected client
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Connect,
    Reload,
}

/// A check, whether it was cancelled, and what to do with its answer.
struct Job {
    work: Box<dyn FnOnce() + Send>,
    cancelled: Arc<AtomicBool>,
}

/// The verifying thread's queue. Dropping it ends the thread once the queue is empty.
pub struct Verifier {
    jobs: Sender<Job>,
    queued: Arc<AtomicUsize>,
}

impl Verifier {
    /// Starts the verifying thread.
    pub fn start() -> std::io::Result<Verifier> {
        let (jobs, queue) = channel::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = Arc::clone(&queued);
        thread::Builder::new()
            .name("natsring-verify".to_string())
            .spawn(move || {
                for job in queue {
                    taken.fetch_sub(1, Ordering::AcqRel);
                    if !job.cancelled.load(Ordering::Relaxed) {
                        (job.work)();
                    }
                }
            })?;
        Ok(Verifier { jobs, queued })
    }

    /// Checks whether `candidate` matches the bcrypt `hash`, then calls `answer` with the
    /// result on the verifying thread, unless `cancelled` is set by then. False (nothing
    /// queued) when `limits::VERIFICATIONS_QUEUED_MAX` checks are waiting already.
    pub fn bcrypt(
        &self,
        hash: String,
        candidate: String,
        cancelled: Arc<AtomicBool>,
        answer: impl FnOnce(bool) + Send + 'static,
    ) -> bool {
        let admitted = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued < crate::limits::VERIFICATIONS_QUEUED_MAX).then_some(queued + 1)
            })
            .is_ok();
        if !admitted {
            return false;
        }
        let work = Box::new(move || answer(super::authenticate::bcrypt_matches(&hash, &candidate)));
        // The thread only ends when this sender is dropped; a send cannot fail before.
        let _ = self.jobs.send(Job { work, cancelled });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_arrive_from_the_verifying_thread_and_cancelled_checks_are_skipped() {
        let verifier = Verifier::start().unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let (answers, answered) = channel();
        let cancelled = Arc::new(AtomicBool::new(true));
        for (candidate, cancel) in [
            ("gone", &cancelled),
            ("pw", &Arc::default()),
            ("no", &Arc::default()),
        ] {
            let answers = answers.clone();
            assert!(verifier.bcrypt(
                hash.clone(),
                candidate.to_string(),
                Arc::clone(cancel),
                move |ok| {
                    answers.send((candidate, ok)).unwrap();
                }
            ));
        }
        assert_eq!(answered.recv().unwrap(), ("pw", true));
        assert_eq!(answered.recv().unwrap(), ("no", false));
    }

    #[test]
    fn the_queue_is_bounded() {
        let verifier = Verifier::start().unwrap();
        // Occupy the thread, then fill the queue behind it.
        let (release, wait) = channel::<()>();
        let (started, has_started) = channel::<()>();
        let blocker = Job {
            work: Box::new(move || {
                started.send(()).unwrap();
                let _ = wait.recv();
            }),
            cancelled: Arc::default(),
        };
        verifier.queued.fetch_add(1, Ordering::AcqRel);
        verifier.jobs.send(blocker).unwrap();
        has_started.recv().unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let mut admitted = 0;
        while verifier.bcrypt(
            hash.clone(),
            "pw".into(),
            Arc::new(AtomicBool::new(true)),
            |_| {},
        ) {
            admitted += 1;
        }
        assert_eq!(admitted, crate::limits::VERIFICATIONS_QUEUED_MAX);
        release.send(()).unwrap();
    }
}
