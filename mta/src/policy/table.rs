//! Postfix lookup tables, read from the files a Postfix site already has:
//!
//! - `hash:FILE` (also `btree:`, `lmdb:`, `texthash:`): the source text
//!   `postmap` builds its database from — `key value` lines, keys folded to
//!   lower case, the first of a duplicated key kept, as postmap does. We read
//!   the text itself, so there is no `.db` to rebuild.
//! - `cidr:FILE`: `network/prefix value` (or a bare address), first match
//!   wins, `!` negates (cidr_table(5)).
//! - `regexp:FILE` and `pcre:FILE`: `/pattern/flags value`, `!/pattern/`,
//!   `if /pattern/` … `endif`, `$1` in the value (regexp_table(5),
//!   pcre_table(5)). `pcre:` is PCRE2 itself (the library Postfix links,
//!   built from its bundled source), on bytes. `regexp:` is compiled with
//!   the `regex` crate, byte-wise and ASCII-only as Postfix's POSIX
//!   regexec in the C locale is; what `regex` lacks (backreferences,
//!   look-around) is refused at load with the file and line — use a
//!   `pcre:` table for those. POSIX takes
//!   the leftmost-longest match and `regex` the leftmost-first: a verdict
//!   never differs, only what `$n` captures with alternations such as
//!   `/(a|ab)/`.
//!
//! Tables are written by hand, so every line is checked when the table is
//! loaded and an error names the file and the line. A table edited on disk
//! is picked up by the next lookup (its size, time and inode are looked at
//! each time), whole or not at all: a file that changed while it was read,
//! or that no longer parses, leaves the table as it was, with an error
//! logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::config::Network;

/// A table that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError(pub String);

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TableError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Exact keys: the lookups that try parts of a key (parent domains,
    /// networks) are only made in these, as in Postfix.
    Fixed,
    Cidr,
    Regexp,
    Pcre,
}

/// One table, as `type:path`.
pub struct Table {
    name: String,
    kind: Kind,
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    stamp: Stamp,
    entries: Arc<Entries>,
}

/// What tells that a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    pub(crate) fn of(path: &Path) -> std::io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

enum Entries {
    Fixed(HashMap<Vec<u8>, String>),
    Cidr(Vec<CidrEntry>),
    Regexp(RegexpTable),
}

struct CidrEntry {
    network: Network,
    negate: bool,
    value: String,
}

/// A regexp or pcre table's entries and their patterns. A regexp table's
/// patterns are also one set: one pass over a key tells which match (a
/// header meets every rule of a table, and most meet none), so only the
/// entry that decides runs its own regex, for its captures.
struct RegexpTable {
    entries: Vec<RegexpEntry>,
    matchers: Vec<Matcher>,
    set: Option<RegexSet>,
}

/// A compiled pattern: `regex` for regexp tables, PCRE2 for pcre tables.
enum Matcher {
    Posix(Regex),
    Pcre(pcre2::bytes::Regex),
}

/// Where each group matched, by group number.
type Groups = Vec<Option<(usize, usize)>>;

impl Matcher {
    fn is_match(&self, key: &[u8]) -> bool {
        match self {
            Matcher::Posix(r) => r.is_match(key),
            // PCRE2 fails a match only past its limits: as no match
            Matcher::Pcre(r) => r.is_match(key).unwrap_or(false),
        }
    }

    fn groups(&self, key: &[u8]) -> Option<Groups> {
        match self {
            Matcher::Posix(r) => {
                let c = r.captures(key)?;
                Some((0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))).collect())
            }
            Matcher::Pcre(r) => {
                let c = r.captures(key).ok()??;
                Some((0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))).collect())
            }
        }
    }

    fn group_count(&self) -> usize {
        match self {
            Matcher::Posix(r) => r.captures_len() - 1,
            Matcher::Pcre(r) => r.captures_len() - 1,
        }
    }
}

enum RegexpEntry {
    /// `pattern`: its index in the table's matchers (and set).
    Match {
        pattern: usize,
        negate: bool,
        value: Template,
    },
    /// `if`: when it does not match, lookups go on at `end` (past its endif).
    If {
        pattern: usize,
        negate: bool,
        end: usize,
    },
    Endif,
}

impl Table {
    /// Opens `spec` (`hash:/etc/postfix/access`, `cidr:…`, `regexp:…`,
    /// `pcre:…`) and reads it.
    pub fn open(spec: &str) -> Result<Table, TableError> {
        let (kind_name, path) = spec.split_once(':').ok_or_else(|| {
            TableError(format!(
                "{spec:?}: a table is TYPE:FILE, such as hash:/etc/postfix/access"
            ))
        })?;
        let kind = match kind_name {
            "hash" | "btree" | "lmdb" | "texthash" | "dbm" => Kind::Fixed,
            "cidr" => Kind::Cidr,
            "regexp" => Kind::Regexp,
            "pcre" => Kind::Pcre,
            other => {
                return Err(TableError(format!(
                    "{spec:?}: table type {other:?} is not supported (hash, btree, lmdb, texthash, cidr, regexp, pcre)"
                )));
            }
        };
        let path = PathBuf::from(path);
        let (stamp, entries) = load(kind, &path)?;
        Ok(Table {
            name: spec.to_owned(),
            kind,
            path,
            loaded: Mutex::new(Loaded {
                stamp,
                entries: Arc::new(entries),
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether lookups may try parts of a key (parent domains, networks).
    pub fn is_fixed(&self) -> bool {
        self.kind == Kind::Fixed
    }

    /// The table as it is on disk now (reread if it changed).
    fn entries(&self) -> Arc<Entries> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        match Stamp::of(&self.path) {
            Ok(stamp) if stamp == loaded.stamp => {}
            Ok(_) => match load(self.kind, &self.path) {
                Ok((stamp, entries)) => {
                    tracing::info!(table = %self.name, "table reloaded");
                    *loaded = Loaded {
                        stamp,
                        entries: Arc::new(entries),
                    };
                }
                Err(e) => tracing::error!(table = %self.name, "{e}; the table stays as it was"),
            },
            Err(e) => tracing::error!(table = %self.name, "{}: {e}; the table stays as it was", self.path.display()),
        }
        loaded.entries.clone()
    }

    /// A lookup of `key` (a whole key: callers that try parts of it call
    /// this for each).
    pub fn lookup(&self, key: &[u8]) -> Option<String> {
        self.lookups().get(key)
    }

    /// The table as it is now, for several lookups in a row.
    pub fn lookups(&self) -> Lookups {
        Lookups(self.entries())
    }
}

/// A table's entries as they were when taken: lookups of one message see
/// one version of the table.
#[derive(Clone)]
pub struct Lookups(Arc<Entries>);

impl Lookups {
    pub fn get(&self, key: &[u8]) -> Option<String> {
        match &*self.0 {
            Entries::Fixed(map) => map.get(&key.to_ascii_lowercase()).cloned(),
            Entries::Cidr(entries) => {
                let ip = std::str::from_utf8(key)
                    .ok()?
                    .parse::<std::net::IpAddr>()
                    .ok()?
                    .to_canonical();
                // a negated network matches only addresses of its own family
                entries
                    .iter()
                    .find(|e| e.network.address.is_ipv4() == ip.is_ipv4() && e.network.contains(ip) != e.negate)
                    .map(|e| e.value.clone())
            }
            Entries::Regexp(entries) => regexp_lookup(entries, key),
        }
    }
}

fn regexp_lookup(table: &RegexpTable, key: &[u8]) -> Option<String> {
    let matched = table.set.as_ref().map(|s| s.matches(key));
    let is_match = |pattern: usize| match &matched {
        Some(m) => m.matched(pattern),
        None => table.matchers[pattern].is_match(key),
    };
    let entries = &table.entries;
    let mut i = 0;
    while i < entries.len() {
        match &entries[i] {
            RegexpEntry::Match { pattern, negate, value } => {
                if is_match(*pattern) != *negate {
                    let groups = if *negate || !value.has_groups() {
                        None
                    } else {
                        table.matchers[*pattern].groups(key)
                    };
                    return Some(value.expand(key, groups.as_ref()));
                }
            }
            RegexpEntry::If { pattern, negate, end } => {
                if is_match(*pattern) == *negate {
                    i = *end;
                    continue;
                }
            }
            RegexpEntry::Endif => {}
        }
        i += 1;
    }
    None
}

/// A value with `$n` references: pieces of text and group numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Group(usize),
}

impl Template {
    /// Postfix's syntax: `$n`, `${n}`, `$(n)`, `$$` for a `$`; a name
    /// after `$` runs over letters, digits and `_`, and must be a number
    /// (`$1x` is refused, as postmap refuses it).
    fn parse(value: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut rest = value.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            rest = tail;
            if b != b'$' {
                text.push(b);
                continue;
            }
            let (name, after) = match tail.first() {
                Some(b'$') => {
                    text.push(b'$');
                    rest = &tail[1..];
                    continue;
                }
                Some(&open @ (b'{' | b'(')) => {
                    let close = if open == b'{' { b'}' } else { b')' };
                    let end = tail
                        .iter()
                        .position(|&c| c == close)
                        .ok_or_else(|| format!("unclosed {} in {value:?}", open as char))?;
                    (&tail[1..end], &tail[end + 1..])
                }
                _ => {
                    let n = tail
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                        .count();
                    (&tail[..n], &tail[n..])
                }
            };
            if name.is_empty() {
                return Err(format!("a $ with no group number in {value:?} (write $$ for a $)"));
            }
            let n = std::str::from_utf8(name)
                .ok()
                .filter(|n| n.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("${}: not a group number", String::from_utf8_lossy(name)))?;
            pieces.push(Piece::Text(std::mem::take(&mut text)));
            pieces.push(Piece::Group(n));
            rest = after;
        }
        pieces.push(Piece::Text(text));
        pieces.retain(|p| p != &Piece::Text(Vec::new()));
        Ok(Template(pieces))
    }

    fn has_groups(&self) -> bool {
        self.groups().next().is_some()
    }

    fn groups(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().filter_map(|p| match p {
            Piece::Group(n) => Some(*n),
            Piece::Text(_) => None,
        })
    }

    /// The text, with what each group matched (nothing if it did not
    /// take part).
    fn expand(&self, key: &[u8], groups: Option<&Groups>) -> String {
        let mut out = Vec::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Group(n) => {
                    if let Some(Some((start, end))) = groups.and_then(|g| g.get(*n)) {
                        out.extend_from_slice(&key[*start..*end]);
                    }
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Reads the file whole; a file that changed while it was read is refused.
fn load(kind: Kind, path: &Path) -> Result<(Stamp, Entries), TableError> {
    let io = |e: std::io::Error| TableError(format!("{}: {e}", path.display()));
    let before = Stamp::of(path).map_err(io)?;
    let text = std::fs::read(path).map_err(io)?;
    let after = Stamp::of(path).map_err(io)?;
    if before != after || text.len() as u64 != after.size {
        return Err(TableError(format!(
            "{}: changed while it was read; it is read again at the next lookup",
            path.display()
        )));
    }
    let lines = logical_lines(&text);
    let at = |number: usize, message: String| TableError(format!("{}:{number}: {message}", path.display()));
    let entries = match kind {
        Kind::Fixed => Entries::Fixed(parse_fixed(&lines)),
        Kind::Cidr => Entries::Cidr(parse_cidr(&lines).map_err(|(n, m)| at(n, m))?),
        Kind::Regexp => Entries::Regexp(parse_regexp(&lines, false).map_err(|(n, m)| at(n, m))?),
        Kind::Pcre => Entries::Regexp(parse_regexp(&lines, true).map_err(|(n, m)| at(n, m))?),
    };
    Ok((after, entries))
}

/// Postfix's logical lines: blank lines and `#` comments skipped, a line
/// that starts with white space continues the one before. Each comes with
/// the number of its first line.
fn logical_lines(text: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut lines: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let trimmed = line.trim_ascii_start();
        if trimmed.is_empty() || trimmed.starts_with(b"#") {
            continue;
        }
        if line.len() != trimmed.len()
            && let Some((_, last)) = lines.last_mut()
        {
            last.push(b' ');
            last.extend_from_slice(trimmed.trim_ascii_end());
            continue;
        }
        lines.push((i + 1, trimmed.trim_ascii_end().to_vec()));
    }
    lines
}

fn split_key(line: &[u8]) -> (&[u8], &[u8]) {
    let end = line.iter().position(u8::is_ascii_whitespace).unwrap_or(line.len());
    (&line[..end], line[end..].trim_ascii())
}

fn parse_fixed(lines: &[(usize, Vec<u8>)]) -> HashMap<Vec<u8>, String> {
    let mut map = HashMap::new();
    for (_, line) in lines {
        let (key, value) = split_key(line);
        map.entry(key.to_ascii_lowercase())
            .or_insert_with(|| String::from_utf8_lossy(value).into_owned());
    }
    map
}

fn parse_cidr(lines: &[(usize, Vec<u8>)]) -> Result<Vec<CidrEntry>, (usize, String)> {
    lines
        .iter()
        .map(|(n, line)| {
            let (key, value) = split_key(line);
            let key = String::from_utf8_lossy(key);
            let (negate, key) = match key.strip_prefix('!') {
                Some(k) => (true, k),
                None => (false, &*key),
            };
            let key = key.replace(['[', ']'], "");
            let network: Network = key.parse().map_err(|e: String| (*n, e))?;
            if value.is_empty() {
                return Err((*n, format!("{key}: no value")));
            }
            Ok(CidrEntry {
                network,
                negate,
                value: String::from_utf8_lossy(value).into_owned(),
            })
        })
        .collect()
}

/// One `/pattern/flags` at the start of `text`: the compiled pattern (by
/// PCRE2 when `pcre`), the pattern with its flags inline (for a regexp
/// table's set), whether it was negated, and what follows.
fn parse_pattern(text: &[u8], pcre: bool) -> Result<(Matcher, String, bool, &[u8]), String> {
    let (negate, text) = match text.strip_prefix(b"!") {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (&delimiter, body) = text.split_first().ok_or("a pattern is missing")?;
    if delimiter.is_ascii_alphanumeric() || delimiter.is_ascii_whitespace() || delimiter == b'\\' {
        return Err(format!(
            "expected a pattern such as /text/, found {:?}",
            String::from_utf8_lossy(text)
        ));
    }
    let mut end = None;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b if b == delimiter => {
                end = Some(i);
                break;
            }
            _ => i += 1,
        }
    }
    let end = end.ok_or_else(|| format!("the pattern has no closing {}", delimiter as char))?;
    let pattern = &body[..end];
    let rest = &body[end + 1..];
    let flags_len = rest.iter().take_while(|b| !b.is_ascii_whitespace()).count();
    let pattern_text = std::str::from_utf8(pattern).map_err(|_| "the pattern is not UTF-8 text".to_owned())?;
    if pcre {
        return parse_pcre(pattern_text, &rest[..flags_len])
            .map(|m| (m, String::new(), negate, rest[flags_len..].trim_ascii()));
    }
    // Postfix's defaults: case-insensitive, not multi-line (so `.` also
    // matches the newlines inside a folded header)
    let (mut insensitive, mut multi_line) = (true, false);
    for &flag in &rest[..flags_len] {
        match flag {
            b'i' => insensitive = !insensitive,
            b'm' => multi_line = !multi_line,
            // extended (ERE) syntax is the only one here
            b'x' => {
                return Err(
                    "the x flag (basic POSIX syntax) is not supported: write the pattern as an extended one".into(),
                );
            }
            other => return Err(format!("unknown pattern flag {:?}", other as char)),
        }
    }
    let pattern = pattern_text;
    let regex = RegexBuilder::new(pattern)
        .unicode(false)
        .case_insensitive(insensitive)
        .multi_line(multi_line)
        .dot_matches_new_line(!multi_line)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            let why = e.to_string();
            let hint = if why.contains("backreferences") || why.contains("look-around") {
                " (backreferences and look-around need a pcre: table)"
            } else {
                ""
            };
            format!(
                "bad pattern /{pattern}/{hint}: {}",
                why.lines().last().unwrap_or(&why).trim()
            )
        })?;
    // the same pattern with its flags inline, for the table's set
    let on_off = [(insensitive, 'i'), (multi_line, 'm'), (!multi_line, 's')];
    let on: String = on_off.iter().filter(|(f, _)| *f).map(|(_, c)| *c).collect();
    let off: String = on_off.iter().filter(|(f, _)| !*f).map(|(_, c)| *c).collect();
    let inline = format!("(?{on}-{off}:{pattern})");
    Ok((Matcher::Posix(regex), inline, negate, rest[flags_len..].trim_ascii()))
}

/// A pcre_table(5) pattern: PCRE2 on bytes (no UTF mode, as Postfix's
/// default), case-insensitive and dot-all (`.` takes the newlines of a
/// folded header; Postfix 2.0 and later) unless `i` or `s`; `m` and `x`
/// turn on PCRE's multi-line and extended modes.
fn parse_pcre(pattern: &str, flags: &[u8]) -> Result<Matcher, String> {
    let mut builder = pcre2::bytes::RegexBuilder::new();
    let (mut caseless, mut multi_line, mut dotall, mut extended) = (true, false, true, false);
    for &flag in flags {
        match flag {
            b'i' => caseless = !caseless,
            b'm' => multi_line = !multi_line,
            b's' => dotall = !dotall,
            b'x' => extended = !extended,
            other => {
                return Err(format!(
                    "pcre flag {:?} is not supported (i, m, s and x are)",
                    other as char
                ));
            }
        }
    }
    builder
        .caseless(caseless)
        .multi_line(multi_line)
        .dotall(dotall)
        .extended(extended)
        .utf(false)
        .jit_if_available(true);
    builder
        .build(pattern)
        .map(Matcher::Pcre)
        .map_err(|e| format!("bad pattern /{pattern}/: {e}"))
}

fn parse_regexp(lines: &[(usize, Vec<u8>)], pcre: bool) -> Result<RegexpTable, (usize, String)> {
    let mut entries = Vec::new();
    let mut patterns: Vec<String> = Vec::new();
    let mut matchers: Vec<Matcher> = Vec::new();
    let mut open_ifs: Vec<(usize, usize)> = Vec::new(); // (entry index, line)
    for (n, line) in lines {
        let n = *n;
        let word_end = line.iter().position(u8::is_ascii_whitespace).unwrap_or(line.len());
        match &line[..word_end] {
            w if w.eq_ignore_ascii_case(b"endif") => {
                let (start, _) = open_ifs.pop().ok_or((n, "endif without if".to_owned()))?;
                entries.push(RegexpEntry::Endif);
                let end_at = entries.len();
                if let RegexpEntry::If { end, .. } = &mut entries[start] {
                    *end = end_at;
                }
            }
            w if w.eq_ignore_ascii_case(b"if") => {
                let (matcher, inline, negate, rest) =
                    parse_pattern(line[word_end..].trim_ascii(), pcre).map_err(|e| (n, e))?;
                if !rest.is_empty() {
                    return Err((n, "an if line holds only its pattern".to_owned()));
                }
                open_ifs.push((entries.len(), n));
                patterns.push(inline);
                matchers.push(matcher);
                entries.push(RegexpEntry::If {
                    pattern: patterns.len() - 1,
                    negate,
                    end: 0,
                });
            }
            _ => {
                let (matcher, inline, negate, value) = parse_pattern(line, pcre).map_err(|e| (n, e))?;
                if value.is_empty() {
                    return Err((n, "the pattern has no value".to_owned()));
                }
                let value = Template::parse(&String::from_utf8_lossy(value)).map_err(|e| (n, e))?;
                let groups = matcher.group_count();
                if let Some(bad) = value.groups().find(|&r| negate || r > groups) {
                    return Err((
                        n,
                        if negate {
                            format!("${bad}: a negated pattern captures nothing")
                        } else {
                            format!("${bad}: the pattern has {groups} group(s)")
                        },
                    ));
                }
                patterns.push(inline);
                matchers.push(matcher);
                entries.push(RegexpEntry::Match {
                    pattern: patterns.len() - 1,
                    negate,
                    value,
                });
            }
        }
    }
    if let Some((_, line)) = open_ifs.pop() {
        return Err((line, "if without endif".to_owned()));
    }
    let set = if pcre {
        None
    } else {
        let set = RegexSetBuilder::new(&patterns)
            .unicode(false)
            .size_limit(64 << 20)
            .build()
            .map_err(|e| {
                (
                    lines.last().map_or(0, |(n, _)| *n),
                    format!("the table's patterns together: {e}"),
                )
            })?;
        Some(set)
    };
    Ok(RegexpTable { entries, matchers, set })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(kind: &str, text: &str) -> (tempfile::TempDir, Table) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table");
        std::fs::write(&path, text).unwrap();
        let t = Table::open(&format!("{kind}:{}", path.display())).unwrap();
        (dir, t)
    }

    fn open_err(kind: &str, text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table");
        std::fs::write(&path, text).unwrap();
        let e = Table::open(&format!("{kind}:{}", path.display()))
            .err()
            .expect("refused");
        e.0.replace(&path.display().to_string(), "FILE")
    }

    #[test]
    fn fixed_tables_fold_keys_and_keep_the_first() {
        let (_d, t) = table(
            "hash",
            "# the seed's access list\n150.59.112.17 OK\n61.49.138.219   REJECT\nSpam.Example REJECT no\n  thanks\nspam.example OK\n",
        );
        assert_eq!(t.lookup(b"150.59.112.17").as_deref(), Some("OK"));
        assert_eq!(t.lookup(b"SPAM.example").as_deref(), Some("REJECT no thanks"));
        assert_eq!(t.lookup(b"61.49.138"), None, "exact keys only: callers try the parts");
        assert!(t.is_fixed());
    }

    #[test]
    fn cidr_first_match_and_negation() {
        let (_d, t) = table(
            "cidr",
            "61.49.138.0/24 REJECT\n192.0.2.1 OK\n!10.0.0.0/8 DUNNO\n10.1.0.0/16 REJECT inside\n[2001:db8::]/32 OK\n",
        );
        assert_eq!(t.lookup(b"61.49.138.219").as_deref(), Some("REJECT"));
        assert_eq!(t.lookup(b"192.0.2.1").as_deref(), Some("OK"));
        assert_eq!(t.lookup(b"198.51.100.1").as_deref(), Some("DUNNO"));
        assert_eq!(t.lookup(b"10.1.2.3").as_deref(), Some("REJECT inside"));
        assert_eq!(
            t.lookup(b"2001:db8::5").as_deref(),
            Some("OK"),
            "!10/8 is for IPv4 addresses (as postmap)"
        );
        assert_eq!(t.lookup(b"not-an-address"), None);
        assert!(open_err("cidr", "10.0.0.0/33 OK\n").starts_with("FILE:1: "));
        assert!(open_err("cidr", "ok\n10.0.0.0/8\n").starts_with("FILE:1: "));
    }

    #[test]
    fn regexp_tables_as_postfix() {
        // the seed's Subject rules, verbatim
        let seed = "/^Subject: .*Make Money Fast/ REJECT\n/^Subject:.*V[i|1]agra/ REJECT\n\
                    /^Subject:.*V.I.A.G.R.A/ REJECT\n/^Subject:.*F￥.R￥.E￥.E/i REJECT\n\
                    /^Subject:.*ink*jet.*cartridges/ REJECT\n/^Subject:.*sex life/ REJECT\n\
                    /^Subject:.*fat.*muscle/ REJECT\n";
        let (_d, t) = table("regexp", seed);
        for subject in [
            "Subject: make money fast!!",
            "Subject: cheap V1agra",
            "Subject: v-i-a-g-r-a",
            "Subject: Inkjet Cartridges 50% off",
            "Subject: burn fat,\n\tgain muscle",
        ] {
            assert_eq!(t.lookup(subject.as_bytes()).as_deref(), Some("REJECT"), "{subject}");
        }
        // the i flag turns case-sensitivity on; ￥ is three bytes and `.` one
        assert_eq!(t.lookup("Subject: F￥xR￥xE￥xE".as_bytes()).as_deref(), Some("REJECT"));
        assert_eq!(t.lookup("Subject: f￥xr￥xe￥xe".as_bytes()), None);
        assert_eq!(t.lookup(b"Subject: lunch"), None);

        let (_d, t) = table(
            "regexp",
            "if /^From:/\n!/@example\\.jp/ REJECT outside $$5\nendif\n/^To: (.*)@(.*)$/ WARN to ${2} user $(1)\n\
             #/^X-/ IGNORE\n/^X-Mailer: (a|ab)(c|bcd)/ PREPEND X-Seen: $1-$2\n|^Subject: (paths/in)| DUNNO $1\n",
        );
        assert_eq!(t.lookup(b"From: a@example.jp"), None);
        assert_eq!(t.lookup(b"From: a@example.com").as_deref(), Some("REJECT outside $5"));
        assert_eq!(
            t.lookup(b"To: bob@example.jp").as_deref(),
            Some("WARN to example.jp user bob")
        );
        assert_eq!(t.lookup(b"X-Foo: x"), None);
        // what captures when alternatives overlap: as Debian's Postfix (glibc)
        assert_eq!(t.lookup(b"X-Mailer: abcd").as_deref(), Some("PREPEND X-Seen: a-bcd"));
        assert_eq!(t.lookup(b"Subject: paths/in").as_deref(), Some("DUNNO paths/in"));
        assert_eq!(
            t.lookup(&[b'X', b'-', 0xff, b':']),
            None,
            "bytes that are not UTF-8 are matched too"
        );
    }

    #[test]
    fn pcre_tables_have_what_regexp_lacks() {
        let (_d, t) = table(
            "pcre",
            "/^Subject: (\\w+) \\1\\b/ REJECT repeated $1\n/^From: (?!.*@example\\.jp)/ WARN outsider\n\
             /^X-Dot: a.b/ OK dotall by default\n",
        );
        assert_eq!(
            t.lookup(b"Subject: BUY buy now").as_deref(),
            Some("REJECT repeated BUY")
        );
        assert_eq!(t.lookup(b"From: a@example.jp"), None);
        assert_eq!(t.lookup(b"From: a@example.com").as_deref(), Some("WARN outsider"));
        assert_eq!(t.lookup(b"X-Dot: a\nb").as_deref(), Some("OK dotall by default"));
        assert!(open_err("pcre", "/(a/ OK\n").starts_with("FILE:1: bad pattern /(a/"));
        assert!(open_err("pcre", "/a/U OK\n").starts_with("FILE:1: pcre flag 'U' is not supported"));
    }

    #[test]
    fn regexp_errors_name_the_line() {
        for (text, want) in [
            (
                "/a/ OK\n/(b)\\1/ REJECT\n",
                "FILE:2: bad pattern /(b)\\1/ (backreferences and look-around need a pcre: table)",
            ),
            ("/a/ OK\n\n/b/\n", "FILE:3: the pattern has no value"),
            ("/a(/ OK\n", "FILE:1: bad pattern /a(/"),
            ("/a OK\n", "FILE:1: the pattern has no closing /"),
            ("/(a)/ REJECT $2\n", "FILE:1: $2: the pattern has 1 group(s)"),
            ("!/(a)/ REJECT $1\n", "FILE:1: $1: a negated pattern captures nothing"),
            ("if /a/\n/b/ OK\n", "FILE:1: if without endif"),
            ("endif\n", "FILE:1: endif without if"),
            ("/a/q OK\n", "FILE:1: unknown pattern flag 'q'"),
            ("/(a)/ R $1x\n", "FILE:1: $1x: not a group number"),
            ("/(a)/ R cost $\n", "FILE:1: a $ with no group number"),
            ("abc OK\n", "FILE:1: expected a pattern"),
        ] {
            let e = open_err("regexp", text);
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        assert!(Table::open("nis:/x").err().unwrap().0.contains("not supported"));
        assert!(
            Table::open("/etc/postfix/access")
                .err()
                .unwrap()
                .0
                .contains("TYPE:FILE")
        );
    }

    #[test]
    fn an_edited_table_is_picked_up_whole_and_a_broken_one_kept() {
        let (dir, t) = table("regexp", "/^Subject: a/ REJECT\n");
        let path = dir.path().join("table");
        assert!(t.lookup(b"Subject: a").is_some());
        // replaced as postmap does: written beside, renamed over
        std::fs::write(dir.path().join("new"), "/^Subject: b/ REJECT\n").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert!(t.lookup(b"Subject: a").is_none());
        assert!(t.lookup(b"Subject: b").is_some());
        // an edit that breaks it: the last good version stays
        std::fs::write(&path, "/^Subject: (c/ REJECT\n").unwrap();
        assert!(t.lookup(b"Subject: b").is_some());
        // removed: the same
        std::fs::remove_file(&path).unwrap();
        assert!(t.lookup(b"Subject: b").is_some());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Any text, as any kind of table: read or refused with a line,
        /// never a panic; any key looked up in what was read.
        #[test]
        fn hostile_tables_are_read_or_refused(
            text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            lines in proptest::collection::vec("(!?/[a-z()|.*$\\\\]{0,8}/[imq]? [A-Z$0-9{} ]{0,12}|if /a/|endif|[0-9./:!\\[\\]]{0,20} OK|\\s+x)", 0..12),
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t");
            for body in [text.clone(), lines.join("\n").into_bytes()] {
                std::fs::write(&path, &body).unwrap();
                for kind in ["hash", "cidr", "regexp"] {
                    match Table::open(&format!("{kind}:{}", path.display())) {
                        Ok(t) => {
                            let _ = t.lookup(&key);
                        }
                        Err(e) => proptest::prop_assert!(e.0.starts_with(&format!("{}:", path.display())), "{}", e),
                    }
                }
            }
        }
    }
}
