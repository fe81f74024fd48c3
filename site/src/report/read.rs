//! Reading the logs: plain or gzip'ed (by the file's first bytes, not its
//! name: `mtad.log.1.gz` and a rotated file someone renamed both work),
//! in whatever order they are named — the counts do not depend on it.
//! Lines are cut out of the read buffer where they lie; only a line that
//! straddles two reads is copied.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::tally::{Scope, Tally};

/// A log that could not be read.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

/// The files to read for `paths`: files as named, directories as the
/// files in them (sorted by name; not recursively).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReadError> {
    let mut files = Vec::new();
    for path in paths {
        let error = |error| ReadError {
            path: path.clone(),
            error,
        };
        if std::fs::metadata(path).map_err(error)?.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(error)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Counts every line of the files, one thread per core: each file is
/// one tally, merged at the end.
pub fn tally_files(files: &[PathBuf], scope: &Scope) -> Result<Tally, ReadError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Tally, ReadError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut tally = Tally::new(scope.clone());
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = files.get(i) else {
                            return Ok(tally);
                        };
                        tally_file(path, &mut tally).map_err(|error| ReadError {
                            path: path.clone(),
                            error,
                        })?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a reader thread panicked"))
            .collect()
    });
    let mut total = Tally::new(scope.clone());
    for result in results {
        total.merge(result?);
    }
    Ok(total)
}

/// Counts the lines of one file into `tally`.
pub fn tally_file(path: &Path, tally: &mut Tally) -> std::io::Result<()> {
    let mut file = BufReader::with_capacity(1 << 18, File::open(path)?);
    // (what the sniff read stays in the buffer, read again below)
    let gzip = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gzip {
        let reader = BufReader::with_capacity(1 << 18, flate2::bufread::MultiGzDecoder::new(file));
        tally_lines(reader, path, tally)
    } else {
        tally_lines(file, path, tally)
    }
}

/// Counts the lines `reader` gives (`\n` or `\r\n` ends; a last line
/// without one counts too).
pub fn tally_lines(mut reader: impl BufRead, path: &Path, tally: &mut Tally) -> std::io::Result<()> {
    let mut number = 0u64;
    let mut carried: Vec<u8> = Vec::new();
    let place = |n: u64| move || format!("{}:{n}", path.display());
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', buf) {
            number += 1;
            if carried.is_empty() {
                tally.add(strip_cr(&buf[start..end]), place(number));
            } else {
                carried.extend_from_slice(&buf[start..end]);
                tally.add(strip_cr(&carried), place(number));
                carried.clear();
            }
            start = end + 1;
        }
        carried.extend_from_slice(&buf[start..]);
        let used = buf.len();
        reader.consume(used);
        // a line longer than any the programs write is not theirs: keep
        // its start for the example, not all of it
        if carried.len() > 1 << 20 {
            carried.truncate(1 << 16);
        }
    }
    if !carried.is_empty() {
        number += 1;
        tally.add(strip_cr(&carried), place(number));
    }
    Ok(())
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
