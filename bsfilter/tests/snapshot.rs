//! The token snapshot: the same verdicts as the database, never stale.

use std::path::Path;

use bsfilter::store::{Action, Class, Store};
use bsfilter::{Analyzed, Filter, FilterConfig, snapshot};

const WORDS: &[&str] = &[
    "offer",
    "cheap",
    "meeting",
    "report",
    "viagra",
    "budget",
    "click",
    "thursday",
    "discount",
    "project",
    "pills",
    "review",
    "winner",
    "invoice",
    "lottery",
    "agenda",
    "unsubscribe",
    "minutes",
    "casino",
    "draft",
];

/// A message made of words picked by `seed`, leaning spammy or not.
fn message(seed: usize, spammy: bool) -> String {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
    let mut body = Vec::new();
    for _ in 0..25 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let w = WORDS[(x >> 33) % WORDS.len()];
        let lean = if spammy { "buy" } else { "regards" };
        body.push(if (x >> 20).is_multiple_of(3) { lean } else { w });
    }
    format!(
        "From: sender{} <s{seed}@{}.example>\nSubject: {} {seed}\nMessage-ID: <{seed}.{spammy}@x>\n\n{} token{seed}\n",
        seed % 7,
        if spammy { "promo" } else { "work" },
        body[0],
        body.join(" ")
    )
}

/// Learns the messages of `seeds` (spammy or not) as `class`.
fn learn(filter: &Filter, store: &mut Store, seeds: std::ops::Range<usize>, spammy: bool, class: Class) {
    let msgs: Vec<Analyzed> = seeds
        .map(|i| filter.analyze(message(i, spammy).as_bytes(), None))
        .collect();
    filter
        .train(store, &msgs.iter().collect::<Vec<_>>(), Action::Add(class))
        .unwrap();
}

fn trained_filter(home: &Path) -> Filter {
    let filter = Filter::new(FilterConfig::new(home.to_owned()));
    let mut db = filter.open_user_db().unwrap();
    learn(&filter, &mut db, 0..40, true, Class::Spam);
    learn(&filter, &mut db, 0..40, false, Class::Clean);
    filter
}

fn probabilities(filter: &Filter, live: bool, messages: &[Analyzed]) -> Vec<f64> {
    let classifier = if live {
        filter.live_classifier(1).unwrap()
    } else {
        filter.classifier(1).unwrap()
    };
    assert_eq!(classifier.read_databases(), live, "live={live}");
    classifier
        .classify(&messages.iter().collect::<Vec<_>>())
        .unwrap()
        .iter()
        .map(|v| v.probability)
        .collect()
}

#[test]
fn snapshot_gives_the_same_verdicts_as_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let filter = trained_filter(dir.path());
    let db = filter.user_db_path();
    assert!(!snapshot::path_for(&db).exists(), "training leaves no snapshot");
    assert!(filter.classifier(1).unwrap().read_databases());
    assert_eq!(filter.write_snapshots().unwrap(), 1);
    assert_eq!(filter.write_snapshots().unwrap(), 0, "a current one is kept");

    let new: Vec<Analyzed> = (0..60)
        .map(|i| filter.analyze(message(1000 + i, i % 2 == 0).as_bytes(), None))
        .collect();
    let from_db = probabilities(&filter, true, &new);
    let from_snapshot = probabilities(&filter, false, &new);
    assert_eq!(from_db, from_snapshot);
    // and the verdicts mean something: the spammy half scores higher
    let spam_mean: f64 = from_db.iter().step_by(2).sum::<f64>() / 30.0;
    let ham_mean: f64 = from_db.iter().skip(1).step_by(2).sum::<f64>() / 30.0;
    assert!(spam_mean > ham_mean + 0.5, "{spam_mean} vs {ham_mean}");
}

#[test]
fn training_removes_the_snapshot_and_is_seen_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let filter = trained_filter(dir.path());
    let db = filter.user_db_path();
    filter.write_snapshots().unwrap();
    let probe = [filter.analyze(message(5000, true).as_bytes(), None)];
    let before = probabilities(&filter, false, &probe)[0];
    assert!(before > 0.9, "{before}");

    // the user says this kind of mail is clean
    let mut store = filter.open_user_db().unwrap();
    learn(&filter, &mut store, 6000..6060, true, Class::Clean);
    assert!(!snapshot::path_for(&db).exists());
    let after = probabilities(&filter, true, &probe)[0];
    assert!(after < before, "{after} after relabelling, {before} before");

    // the next snapshot has the new counts
    filter.write_snapshots().unwrap();
    assert_eq!(probabilities(&filter, false, &probe)[0], after);

    // importing counts removes it too
    let counts = std::collections::HashMap::from([("regards".to_owned(), 3u64)]);
    store.import(Class::Spam, &counts, 1).unwrap();
    assert!(!snapshot::path_for(&db).exists());
}

#[test]
fn a_writer_holding_the_lock_defers_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let filter = trained_filter(dir.path());
    let db = filter.user_db_path();
    let mut store = Store::open_writable(&db, std::time::Duration::from_secs(5))
        .unwrap()
        .unwrap();
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert!(!store.write_snapshot(std::time::Duration::from_secs(5)).unwrap());
    assert!(!snapshot::path_for(&db).exists());
    writer.execute_batch("ROLLBACK").unwrap();
    assert!(store.write_snapshot(std::time::Duration::from_secs(5)).unwrap());
    assert!(snapshot::path_for(&db).exists());
}

#[test]
fn a_replaced_database_does_not_inherit_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let filter = trained_filter(dir.path());
    let db = filter.user_db_path();
    filter.write_snapshots().unwrap();
    // restore "a backup": the same bytes under a new inode
    let copy = dir.path().join("backup");
    std::fs::copy(&db, &copy).unwrap();
    std::fs::rename(&copy, &db).unwrap();
    assert!(filter.classifier(1).unwrap().read_databases());
}
