//! Checks that cost milliseconds by design (bcrypt), done off the shards: a shard hands a
//! check here and goes on serving its other clients; the answer comes back to it as a command
//! in its mailbox. One thread, so logins can take at most one core from the shards whatever
//! their rate. What waits is bounded (`limits::VERIFICATIONS_QUEUED_MAX`; past it a check is
//! refused and so is its client), and a check whose connection went away is skipped, not
//! computed.
//!
//! The thread runs under `SCHED_IDLE`: where it shares a core with a shard, it gets the core
//! only when the shard has nothing to run, and a shard's wake-up takes the core back at once
//! (the kernel preempts an idle-policy thread for any other on wake-up). At the default
//! priority the kernel shared the core fairly instead, and a steady request/reply client's
//! p99 rose 66× while 100 clients a second logged in with bcrypt (`scripts/auth_stall.py`);
//! at nice 19 it still rose 2-5×, a woken shard waiting out part of the verifier's slice. A
//! shard watching its ring (`--busy_poll`) does not yield the core while checks wait or run
//! (`Shard::busy_poll`): a yield hands it to the verifier for a whole slice. So logins use the
//! shards' idle time and other cores, never the time of the clients already connected: on a
//! core its shard keeps busy, they wait, and time out (`authorization { timeout }`) rather
//! than slow everyone else down.

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

/// The nice value the verifying thread takes should the kernel refuse `SCHED_IDLE`: the
/// lowest priority. Lowering one's own priority needs no privilege.
const VERIFIER_NICE: i32 = 19;

/// The verifying thread's queue. Dropping it ends the thread once the queue is empty.
pub struct Verifier {
    jobs: Sender<Job>,
    /// Checks queued and not yet taken.
    queued: Arc<AtomicUsize>,
    /// Checks queued or being made (`busy`).
    pending: Arc<AtomicUsize>,
}

impl Verifier {
    /// Starts the verifying thread.
    pub fn start() -> std::io::Result<Verifier> {
        let (jobs, queue) = channel::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let pending = Arc::new(AtomicUsize::new(0));
        let (taken, done) = (Arc::clone(&queued), Arc::clone(&pending));
        thread::Builder::new()
            .name("natsring-verify".to_string())
            .spawn(move || {
                lower_priority();
                for job in queue {
                    taken.fetch_sub(1, Ordering::AcqRel);
                    if !job.cancelled.load(Ordering::Relaxed) {
                        (job.work)();
                    }
                    done.fetch_sub(1, Ordering::AcqRel);
                }
            })?;
        Ok(Verifier {
            jobs,
            queued,
            pending,
        })
    }

    /// Whether checks are waiting or being made: a shard watching its ring then spins without
    /// yielding the core (see the module).
    pub fn busy(&self) -> bool {
        self.pending.load(Ordering::Relaxed) > 0
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
        self.pending.fetch_add(1, Ordering::AcqRel);
        // The thread only ends when this sender is dropped; a send cannot fail before.
        let _ = self.jobs.send(Job { work, cancelled });
        true
    }
}

/// Puts the calling thread (only: Linux keeps a policy per thread) under `SCHED_IDLE`, or,
/// should the kernel refuse, at `VERIFIER_NICE`. Should that fail too, the checks still run, at
/// the default priority, and a warning says so.
fn lower_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    let Err(refused) =
        set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
    else {
        return;
    };
    let thread = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(thread), VERIFIER_NICE) {
        crate::log_warn!(
            "Could not lower the verifier thread's priority (SCHED_IDLE: {refused:?}, \
             nice {VERIFIER_NICE}: {err}); bcrypt checks may delay the shards"
        );
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
        verifier.pending.fetch_add(1, Ordering::AcqRel);
        verifier.jobs.send(blocker).unwrap();
        assert!(verifier.busy());
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

    #[test]
    fn the_verifying_thread_runs_under_the_idle_policy() {
        let verifier = Verifier::start().unwrap();
        let (answers, answered) = channel();
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert!(
            verifier.bcrypt(hash, "pw".into(), Arc::default(), move |_| {
                let policy = thread_priority::thread_schedule_policy().unwrap();
                answers.send(policy).unwrap();
            })
        );
        assert_eq!(
            answered.recv().unwrap(),
            thread_priority::ThreadSchedulePolicy::Normal(
                thread_priority::NormalThreadSchedulePolicy::Idle
            )
        );
    }
}
