//! Many processes training and classifying one database at once: no lost
//! update, no "database is locked".

use std::collections::HashMap;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_bsfilter");
const PROCESSES: usize = 8;
const BATCHES: usize = 5;
const PER_BATCH: usize = 10;

fn message(worker: usize, n: usize) -> String {
    format!(
        "From: w{worker} <w{worker}@example.com>\nSubject: shared offer\nMessage-ID: <{worker}.{n}@example.com>\n\n\
         shared words for everyone, worker{worker}x and message{worker}x{n}y\n"
    )
}

#[test]
fn eight_processes_train_and_classify_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // create the database first, as the first delivery would
    let status = Command::new(BIN)
        .arg("--homedir")
        .arg(&home)
        .arg("-c")
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    let workers: Vec<_> = (0..PROCESSES)
        .map(|w| {
            let home = home.clone();
            let dir = dir.path().to_owned();
            std::thread::spawn(move || {
                for b in 0..BATCHES {
                    let files: Vec<String> = (0..PER_BATCH)
                        .map(|i| {
                            let p = dir.join(format!("w{w}b{b}m{i}"));
                            std::fs::write(&p, message(w, b * PER_BATCH + i)).unwrap();
                            p.display().to_string()
                        })
                        .collect();
                    let train = Command::new(BIN)
                        .arg("--homedir")
                        .arg(&home)
                        .arg("-s")
                        .args(&files)
                        .output()
                        .unwrap();
                    assert_eq!(
                        train.status.code(),
                        Some(0),
                        "{}",
                        String::from_utf8_lossy(&train.stderr)
                    );
                    let classify = Command::new(BIN)
                        .arg("--homedir")
                        .arg(&home)
                        .args(&files)
                        .output()
                        .unwrap();
                    assert!(
                        matches!(classify.status.code(), Some(0 | 1)),
                        "classify: {:?} {}",
                        classify.status,
                        String::from_utf8_lossy(&classify.stderr)
                    );
                    // one delivery-style classification of a single message
                    let one = Command::new(BIN)
                        .arg("--homedir")
                        .arg(&home)
                        .arg(&files[0])
                        .output()
                        .unwrap();
                    assert!(
                        matches!(one.status.code(), Some(0 | 1)),
                        "{}",
                        String::from_utf8_lossy(&one.stderr)
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }

    let out = Command::new(BIN)
        .arg("--homedir")
        .arg(&home)
        .arg("--export-spam")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let counts: HashMap<String, u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (format!("{} {}", f[1], f[2]), f[3].parse().unwrap())
        })
        .collect();
    let total = (PROCESSES * BATCHES * PER_BATCH) as u64;
    assert_eq!(counts[".internal file_count"], total);
    assert_eq!(counts["body shared"], total);
    assert_eq!(counts["subject offer"], total);
    for w in 0..PROCESSES {
        assert_eq!(counts[&format!("body worker{w}x")], (BATCHES * PER_BATCH) as u64);
        for n in 0..BATCHES * PER_BATCH {
            assert_eq!(counts[&format!("body message{w}x{n}y")], 1);
        }
    }
}
