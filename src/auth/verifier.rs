//! Checks that cost milliseconds by design (bcrypt), done off the shards: a shard hands a
//! check here and goes on serving its other clients; the answer comes back to it as a command
//! in its mailbox. One thread, so logins can take at most one core from the shards whatever
//! their rate; what waits is bounded by the connections, each waiting for at most one check
//! (its reading is paused until the answer).

use std::sync::mpsc::{channel, Sender};
use std::thread;

/// A check and what to do with its answer.
type Job = Box<dyn FnOnce() + Send>;

/// The verifying thread's queue. Dropping it ends the thread once the queue is empty.
pub struct Verifier {
    jobs: Sender<Job>,
}

impl Verifier {
    /// Starts the verifying thread.
    pub fn start() -> std::io::Result<Verifier> {
        let (jobs, queue) = channel::<Job>();
        thread::Builder::new()
            .name("natsring-verify".to_string())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })?;
        Ok(Verifier { jobs })
    }

    /// Checks whether `candidate` matches the bcrypt `hash`, then calls `answer` with the
    /// result, on the verifying thread.
    pub fn bcrypt(
        &self,
        hash: String,
        candidate: String,
        answer: impl FnOnce(bool) + Send + 'static,
    ) {
        let job: Job =
            Box::new(move || answer(super::authenticate::bcrypt_matches(&hash, &candidate)));
        // The thread only ends when this sender is dropped; a send cannot fail before.
        let _ = self.jobs.send(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_arrive_from_the_verifying_thread() {
        let verifier = Verifier::start().unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let (answers, answered) = channel();
        for candidate in ["pw", "no"] {
            let answers = answers.clone();
            verifier.bcrypt(hash.clone(), candidate.to_string(), move |ok| {
                answers.send((candidate, ok)).unwrap();
            });
        }
        assert_eq!(answered.recv().unwrap(), ("pw", true));
        assert_eq!(answered.recv().unwrap(), ("no", false));
    }
}
