//! Learning from what users do: moving mail into or out of the Spam folder,
//! or flagging it `$Junk` / `$NotJunk`, trains that user's token database.
//!
//! Lessons go through a queue to one training thread, so an IMAP command
//! never waits for (or fails because of) the database; a failure is logged
//! and the mail operation stands. The bsfilter ledger makes each lesson
//! idempotent: a message counts once per class, and learning it as the
//! other class moves its counts.
//!
//! The thread keeps each user's filter while the user is teaching it
//! (lindera maps its dictionary once per filter, and a mailbox moved to
//! Spam is many lessons in a row), and lets it go after
//! [`FILTER_IDLE`] without one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use bsfilter::Filter;
use bsfilter::store::{Action, Class};
use lda::config::Config;
use lda::users::User;

/// How long a user's filter is kept after their last lesson.
pub const FILTER_IDLE: Duration = Duration::from_secs(300);

/// One message to learn.
pub struct Lesson {
    pub user: User,
    pub message: Arc<Vec<u8>>,
    pub class: Class,
    /// What the user did, for the log line.
    pub reason: String,
}

/// The handle sessions send lessons to.
#[derive(Clone)]
pub struct Trainer {
    queue: Sender<Lesson>,
}

impl Trainer {
    /// Starts the training thread.
    pub fn start(config: Arc<Config>) -> Trainer {
        let (queue, lessons) = channel();
        std::thread::Builder::new()
            .name("trainer".into())
            .spawn(move || train_all(&config, lessons))
            .expect("spawning the training thread");
        Trainer { queue }
    }

    pub fn submit(&self, lesson: Lesson) {
        if let Err(e) = self.queue.send(lesson) {
            tracing::error!(user = %e.0.user.name, "training thread gone; lesson dropped: {}", e.0.reason);
        }
    }
}

fn train_all(config: &Config, lessons: Receiver<Lesson>) {
    // by user and home: a user whose entry changed gets a new filter
    let mut filters: HashMap<(String, std::path::PathBuf), (Filter, Instant)> = HashMap::new();
    loop {
        let lesson = match lessons.recv_timeout(FILTER_IDLE) {
            Ok(lesson) => lesson,
            Err(RecvTimeoutError::Timeout) => {
                filters.retain(|_, (_, used)| used.elapsed() < FILTER_IDLE);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        filters.retain(|_, (_, used)| used.elapsed() < FILTER_IDLE);
        let filter = match filters.entry((lesson.user.name.clone(), lesson.user.home.clone())) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => match lda::filter::for_user(config, &lesson.user) {
                Ok(f) => e.insert((f, Instant::now())),
                Err(err) => {
                    tracing::error!(user = %lesson.user.name, "cannot learn: {err}: {}", lesson.reason);
                    continue;
                }
            },
        };
        filter.1 = Instant::now();
        learn(&filter.0, &lesson);
    }
}

fn learn(filter: &Filter, lesson: &Lesson) {
    let analyzed = filter.analyze(&lesson.message, None);
    let class = match lesson.class {
        Class::Spam => "spam",
        Class::Clean => "clean",
    };
    match filter
        .open_user_db()
        .and_then(|mut db| filter.train(&mut db, &[&analyzed], Action::Add(lesson.class)))
    {
        Ok(outcome) => tracing::info!(
            user = %lesson.user.name,
            message_id = analyzed.message_id.as_deref().unwrap_or("-"),
            "learned as {class} ({:?}): {}",
            outcome.first(),
            lesson.reason
        ),
        Err(e) => tracing::error!(user = %lesson.user.name, "learning as {class} failed: {e}: {}", lesson.reason),
    }
}
