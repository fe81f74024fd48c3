//! Labelled messages: an index file, a directory per class, or mbox files.

use std::path::{Path, PathBuf};

/// The two classes of a corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    Spam,
    Ham,
}

impl Label {
    pub fn name(self) -> &'static str {
        match self {
            Label::Spam => "spam",
            Label::Ham => "ham",
        }
    }
}

/// One labelled message.
#[derive(Debug, Clone)]
pub struct Sample {
    pub label: Label,
    /// Where it came from: a file path (as the index names it) or
    /// `MBOX#N`.
    pub name: String,
    pub raw: Vec<u8>,
}

#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads an index of `spam|ham PATH` lines (the format of
/// `../shared/corpus/prepare.sh`); paths are relative to `root`, by default
/// the index's directory.
pub fn from_index(index: &Path, root: Option<&Path>) -> Result<Vec<Sample>, LoadError> {
    let text = std::fs::read_to_string(index).map_err(|e| LoadError(format!("{}: {e}", index.display())))?;
    let root: PathBuf = match root {
        Some(r) => r.to_owned(),
        None => index.parent().map(Path::to_owned).unwrap_or_default(),
    };
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| LoadError(format!("{}:{}: {why}", index.display(), n + 1));
        let (label, path) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("expected `spam|ham PATH`"))?;
        let label = match label {
            "spam" => Label::Spam,
            "ham" => Label::Ham,
            other => return Err(bad(&format!("label {other:?} is neither spam nor ham"))),
        };
        let path = path.trim();
        let raw = std::fs::read(root.join(path)).map_err(|e| bad(&format!("{path}: {e}")))?;
        samples.push(Sample {
            label,
            name: path.to_owned(),
            raw,
        });
    }
    Ok(samples)
}

/// Every file under `dir` (sorted, recursively) as one message of `label`.
pub fn from_dir(dir: &Path, label: Label) -> Result<Vec<Sample>, LoadError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files).map_err(|e| LoadError(format!("{}: {e}", dir.display())))?;
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let raw = std::fs::read(&path).map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
            Ok(Sample {
                label,
                name: path.display().to_string(),
                raw,
            })
        })
        .collect()
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// The messages of an mbox, all of `label`.
pub fn from_mbox(path: &Path, label: Label) -> Result<Vec<Sample>, LoadError> {
    let data = std::fs::read(path).map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
    Ok(bsfilter::mbox::split(&data)
        .into_iter()
        .enumerate()
        .map(|(i, m)| Sample {
            label,
            name: format!("{}#{}", path.display(), i + 1),
            raw: m.raw.to_vec(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_dir_and_mbox() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("s")).unwrap();
        std::fs::write(dir.path().join("s/1.eml"), "Subject: a\n\nx\n").unwrap();
        std::fs::write(dir.path().join("h.eml"), "Subject: b\n\ny\n").unwrap();
        std::fs::write(dir.path().join("index"), "spam s/1.eml\n\nham h.eml\n").unwrap();
        let s = from_index(&dir.path().join("index"), None).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].label, s[1].label), (Label::Spam, Label::Ham));
        assert_eq!(from_dir(&dir.path().join("s"), Label::Spam).unwrap().len(), 1);
        std::fs::write(dir.path().join("bad"), "maybe x\n").unwrap();
        assert!(from_index(&dir.path().join("bad"), None).unwrap_err().0.contains(":1:"));
        std::fs::write(
            dir.path().join("box"),
            "From a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\n1\n\nFrom b@x Mon Jan  1 00:00:01 2024\nSubject: 2\n\n2\n",
        )
        .unwrap();
        assert_eq!(from_mbox(&dir.path().join("box"), Label::Ham).unwrap().len(), 2);
    }
}
