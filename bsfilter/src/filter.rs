//! The filter as a library: analyse messages, classify them against the
//! user's (and the system-wide) token database, train. The CLI, the
//! delivery agent and the IMAP server all go through this.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::decode::DecodedMessage;
use crate::error::{Error, Result};
use crate::score::{Evidence, Method, RobinsonParams, Scorer};
use crate::snapshot::Snapshot;
use crate::store::{self, Action, Counts, Lesson, MessageKey, Outcome, Store, Totals};
use crate::tokenize::{Bigram, Segmenter, TokenSet, Tokenizer, TokenizerOptions};

/// Everything that decides how the filter behaves.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    /// The user's bsfilter home: the token database lives here.
    pub homedir: PathBuf,
    /// The system-wide database (a file, or a directory holding one).
    pub system_db: Option<PathBuf>,
    pub method: Method,
    /// Robinson's s, x and minimum deviation (methods r and rf).
    pub robinson: RobinsonParams,
    /// Probability above which a message is spam.
    pub spam_cutoff: f64,
    pub tokenizer: TokenizerOptions,
    pub busy_timeout: Duration,
}

impl FilterConfig {
    pub fn new(homedir: PathBuf) -> FilterConfig {
        FilterConfig {
            homedir,
            system_db: None,
            method: Method::RobinsonFisher,
            robinson: RobinsonParams::default(),
            spam_cutoff: Method::RobinsonFisher.default_cutoff(),
            tokenizer: TokenizerOptions::default(),
            busy_timeout: store::DEFAULT_BUSY_TIMEOUT,
        }
    }
}

/// A message ready to classify or learn.
#[derive(Debug, Clone)]
pub struct Analyzed {
    pub tokens: TokenSet,
    pub message_id: Option<String>,
    pub key: MessageKey,
}

/// A classification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub probability: f64,
    pub is_spam: bool,
    /// How strongly the evidence leans (see [`crate::score::Combined`]):
    /// for ranking messages where probabilities tie at 0 or 1.
    pub strength: f64,
}

pub struct Filter {
    config: FilterConfig,
    tokenizer: Tokenizer,
    scorer: Scorer,
}

impl Filter {
    pub fn new(config: FilterConfig) -> Filter {
        Filter::with_segmenter(config, Box::new(Bigram))
    }

    pub fn with_segmenter(config: FilterConfig, segmenter: Box<dyn Segmenter>) -> Filter {
        let tokenizer = Tokenizer::new(config.tokenizer.clone(), segmenter);
        let scorer = Scorer {
            method: config.method,
            robinson: config.robinson,
        };
        Filter {
            config,
            tokenizer,
            scorer,
        }
    }

    pub fn config(&self) -> &FilterConfig {
        &self.config
    }

    pub fn user_db_path(&self) -> PathBuf {
        self.config.homedir.join(store::DB_FILE_NAME)
    }

    pub fn system_db_path(&self) -> Option<PathBuf> {
        self.config.system_db.as_deref().map(resolve_db_path)
    }

    /// Decodes and tokenizes one message.
    pub fn analyze(&self, raw: &[u8], envelope_sender: Option<&str>) -> Analyzed {
        let decoded = DecodedMessage::parse(raw);
        let tokens = self.tokenizer.tokenize(&decoded, envelope_sender);
        let key = MessageKey::new(decoded.message_id.as_deref(), &tokens);
        Analyzed {
            tokens,
            message_id: decoded.message_id,
            key,
        }
    }

    /// Opens the user's database for training, creating the home directory
    /// (mode 0700) and the database when missing.
    pub fn open_user_db(&self) -> Result<Store> {
        create_private_dir(&self.config.homedir)?;
        Store::open(&self.user_db_path(), self.config.busy_timeout)
    }

    /// Opens the databases for classifying about `expected_messages`
    /// messages. For a large batch the token tables are read into memory
    /// once, which beats one lookup per token.
    ///
    /// A database's [`snapshot`](crate::snapshot) is used when current.
    /// Use [`Filter::live_classifier`] when training between
    /// classifications: training removes the snapshot, but a mapped one
    /// stays as it was.
    pub fn classifier(&self, expected_messages: usize) -> Result<Classifier<'_>> {
        self.open_classifier(expected_messages, true)
    }

    /// A classifier that always reads the databases themselves, so it sees
    /// what is learned while it is in use.
    pub fn live_classifier(&self, expected_messages: usize) -> Result<Classifier<'_>> {
        self.open_classifier(expected_messages, false)
    }

    fn open_classifier(&self, expected_messages: usize, snapshots: bool) -> Result<Classifier<'_>> {
        let open = |path: &Path| Layer::open(path, self.config.busy_timeout, expected_messages, snapshots);
        let user = open(&self.user_db_path())?;
        let system = match self.system_db_path() {
            Some(path) => open(&path)?,
            None => Layer::Absent,
        };
        Ok(Classifier {
            filter: self,
            user,
            system,
        })
    }

    /// Writes the snapshot of each database that lacks a current one,
    /// where this process may (a database it cannot write is skipped).
    /// Returns how many were written. Worth it when a classifier
    /// [read a database](Classifier::read_databases) and more
    /// classifications follow before the next training.
    pub fn write_snapshots(&self) -> Result<usize> {
        let mut written = 0;
        for path in [Some(self.user_db_path()), self.system_db_path()].into_iter().flatten() {
            if let Ok(meta) = std::fs::metadata(&path)
                && Snapshot::open(&path, &meta).is_some()
            {
                continue;
            }
            if let Some(mut store) = Store::open_writable(&path, self.config.busy_timeout)? {
                written += usize::from(store.write_snapshot(self.config.busy_timeout)?);
            }
        }
        Ok(written)
    }

    /// Learns (or unlearns) messages in one transaction.
    pub fn train(&self, store: &mut Store, messages: &[&Analyzed], action: Action) -> Result<Vec<Outcome>> {
        let lessons: Vec<Lesson<'_>> = messages
            .iter()
            .map(|m| Lesson {
                tokens: &m.tokens,
                key: m.key,
                message_id: m.message_id.as_deref(),
                action,
            })
            .collect();
        store.train(&lessons)
    }

    /// Learns each message as the class of its verdict (`--auto-update`).
    pub fn train_verdicts(&self, store: &mut Store, messages: &[(&Analyzed, Verdict)]) -> Result<Vec<Outcome>> {
        let lessons: Vec<Lesson<'_>> = messages
            .iter()
            .map(|(m, v)| Lesson {
                tokens: &m.tokens,
                key: m.key,
                message_id: m.message_id.as_deref(),
                action: Action::Add(if v.is_spam {
                    store::Class::Spam
                } else {
                    store::Class::Clean
                }),
            })
            .collect();
        store.train(&lessons)
    }

    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }
}

/// `--system-db` may name the database file or a bsfilter home holding it.
pub fn resolve_db_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(store::DB_FILE_NAME)
    } else {
        path.to_owned()
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::Database {
            path: dir.to_owned(),
            message: format!("cannot create the bsfilter home directory: {e}"),
        }),
    }
}

/// One database as the classifier sees it.
enum Layer {
    /// No database file: no evidence.
    Absent,
    /// Looked up token by token.
    Live(Store),
    /// Looked up in the mapped snapshot.
    Snapshot(Snapshot),
    /// Read into memory (large batches).
    Loaded {
        totals: Totals,
        tokens: FxHashMap<Box<str>, Counts>,
    },
}

/// Lookups per message beyond which reading the whole table is cheaper.
const LOOKUPS_PER_MESSAGE: u64 = 200;

impl Layer {
    fn open(path: &Path, busy_timeout: Duration, expected_messages: usize, snapshots: bool) -> Result<Layer> {
        if snapshots
            && let Ok(meta) = std::fs::metadata(path)
            && let Some(snapshot) = Snapshot::open(path, &meta)
        {
            return Ok(Layer::Snapshot(snapshot));
        }
        let Some(store) = Store::open_read_only(path, busy_timeout)? else {
            return Ok(Layer::Absent);
        };
        let preload = expected_messages > 1
            && store.read(|r| r.token_count())? <= (expected_messages as u64).saturating_mul(LOOKUPS_PER_MESSAGE);
        if !preload {
            return Ok(Layer::Live(store));
        }
        store.read(|r| {
            let totals = r.totals()?;
            let mut tokens = FxHashMap::with_capacity_and_hasher(r.token_count()? as usize, Default::default());
            r.for_each_token(|t, c| {
                tokens.insert(Box::from(t), c);
                Ok(())
            })?;
            Ok(Layer::Loaded { totals, tokens })
        })
    }

    /// Evidence for every token of each message.
    fn evidence(&self, messages: &[&Analyzed]) -> Result<Vec<Vec<Option<Evidence>>>> {
        match self {
            Layer::Absent => Ok(messages.iter().map(|m| vec![None; m.tokens.len()]).collect()),
            Layer::Live(store) => store.read(|r| {
                let totals = r.totals()?;
                messages
                    .iter()
                    .map(|m| {
                        Ok(r.lookup(m.tokens.iter())?
                            .into_iter()
                            .map(|counts| Some(Evidence { counts, totals }))
                            .collect())
                    })
                    .collect()
            }),
            Layer::Snapshot(snapshot) => Ok(counted(messages, snapshot.totals(), |m| {
                snapshot.get_all(m.tokens.iter())
            })),
            Layer::Loaded { totals, tokens } => Ok(counted(messages, *totals, |m| {
                m.tokens
                    .iter()
                    .map(|t| tokens.get(t).copied().unwrap_or_default())
                    .collect()
            })),
        }
    }
}

/// Evidence for every token of each message, from the counts `counts`
/// gives for a message's tokens, in their order.
fn counted(
    messages: &[&Analyzed],
    totals: Totals,
    counts: impl Fn(&Analyzed) -> Vec<Counts>,
) -> Vec<Vec<Option<Evidence>>> {
    messages
        .iter()
        .map(|m| {
            counts(m)
                .into_iter()
                .map(|counts| Some(Evidence { counts, totals }))
                .collect()
        })
        .collect()
}

/// Classifies messages against open databases.
pub struct Classifier<'f> {
    filter: &'f Filter,
    user: Layer,
    system: Layer,
}

impl Classifier<'_> {
    /// Whether a database had no current snapshot and is read through
    /// SQLite (see [`Filter::write_snapshots`]).
    pub fn read_databases(&self) -> bool {
        matches!(self.user, Layer::Live(_)) || matches!(self.system, Layer::Live(_))
    }

    pub fn classify(&self, messages: &[&Analyzed]) -> Result<Vec<Verdict>> {
        let user = self.user.evidence(messages)?;
        let system = match self.system {
            Layer::Absent => None,
            _ => Some(self.system.evidence(messages)?),
        };
        let scorer = &self.filter.scorer;
        Ok(user
            .iter()
            .enumerate()
            .map(|(i, user_ev)| {
                let probabilities = user_ev.iter().enumerate().map(|(j, u)| {
                    let s = system.as_ref().and_then(|s| s[i][j]);
                    scorer.token_probability(*u, s)
                });
                let robinson = &scorer.robinson;
                let tokens = messages[i].tokens.iter();
                let weighted = |(token, p)| (p, self.filter.tokenizer.weight(token));
                let combined = if scorer.method != Method::Graham
                    && (robinson.one_token_per_site || robinson.one_token_per_name)
                {
                    let votes = once_per_fact(tokens.zip(probabilities), robinson);
                    scorer.combine_weighted(votes.into_iter().map(weighted))
                } else {
                    scorer.combine_weighted(tokens.zip(probabilities).map(weighted))
                };
                Verdict {
                    probability: combined.probability,
                    is_spam: combined.probability > self.filter.config.spam_cutoff,
                    strength: combined.strength,
                }
            })
            .collect())
    }
}

/// The fact a token tells, when other tokens of the message may tell it
/// too: its site ([`crate::tokenize::site_of`]) or its name across the
/// addressing fields ([`crate::tokenize::name_of`]), as the parameters
/// ask.
fn fact_of<'t>(token: &'t str, robinson: &RobinsonParams) -> Option<Fact<'t>> {
    use crate::tokenize::{name_of, site_of};
    let site = robinson.one_token_per_site.then(|| site_of(token)).flatten();
    let name = || robinson.one_token_per_name.then(|| name_of(token)).flatten();
    site.map(Fact::Site).or_else(|| name().map(Fact::Name))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fact<'t> {
    /// A host's registered domain.
    Site(&'t str),
    /// A word or address of the addressing fields.
    Name(&'t str),
}

impl<'t> Fact<'t> {
    fn text(self) -> &'t str {
        match self {
            Fact::Site(text) | Fact::Name(text) => text,
        }
    }
}

/// A message's token probabilities with the tokens of one fact (see
/// [`fact_of`]) reduced to the most telling of them (a known token before
/// an unknown one), each vote with the token that cast it. Facts that the
/// message itself ties together count as one:
/// - A `Received` word that is a label of a host named in the message
///   (`received:mandark` beside `url:mandark.labs.example.net`, and the
///   registered name's `received:example`) belongs to that host's site:
///   the tokenizer states a relay by its name's words as well as by its
///   `url:` tokens. Only for hosts under their registered domain: a bare
///   `url:example.net` is more often an address's domain (`for
///   <jm@example.net>`) than a relay. A label of two sites (`mail`,
///   `www`) names neither.
/// - An address's words are its name: `return-path:fork-admin@xent.com`,
///   `return-path:fork`, `to:fork` and `url:fork` (from `/listinfo/fork`)
///   are one list, stated by its bounce address, its words and its links.
fn once_per_fact<'t>(
    tokens: impl Iterator<Item = (&'t str, Option<f64>)>,
    robinson: &RobinsonParams,
) -> Vec<(&'t str, Option<f64>)> {
    let mut facts = Facts::default();
    let mut members: Vec<(usize, &str, Option<f64>)> = Vec::new();
    let mut others: Vec<(&str, Option<f64>)> = Vec::new();
    // host label -> its site, None once a second site has it
    let mut site_of_label: FxHashMap<&str, Option<&str>> = FxHashMap::default();
    for (token, p) in tokens {
        let Some(fact) = fact_of(token, robinson) else {
            others.push((token, p));
            continue;
        };
        if let Fact::Site(site) = fact
            && let Some(host) = token.strip_prefix("url:")
            && let Some(registered) = site.split('.').next()
            && let Some(subdomain_labels) = host.strip_suffix(site).and_then(|h| h.strip_suffix('.'))
        {
            for label in subdomain_labels
                .split('.')
                .chain([registered])
                .filter(|l| !l.is_empty())
            {
                let site_of_this = site_of_label.entry(label).or_insert(Some(site));
                if *site_of_this != Some(site) {
                    *site_of_this = None;
                }
            }
        }
        let id = facts.id(fact.text());
        // an address's name: its local part's words are the same name
        if let Fact::Name(name) = fact
            && let Some((local, _domain)) = name.rsplit_once('@')
        {
            for word in local.split(crate::tokenize::WORD_JOINERS).filter(|w| w.len() > 1) {
                let word_id = facts.id(word);
                facts.join(id, word_id);
            }
        }
        members.push((id, token, p));
    }
    let mut votes = Vec::with_capacity(others.len() + facts.len());
    for (token, p) in others {
        let relay_site = token
            .strip_prefix("received:")
            .and_then(|word| site_of_label.get(word).copied().flatten());
        match relay_site {
            Some(site) => members.push((facts.id(site), token, p)),
            None => votes.push((token, p)),
        }
    }
    for member in members.iter_mut() {
        member.0 = facts.root(member.0);
    }
    members.sort_unstable_by_key(|m| m.0);
    let telling = |p: &Option<f64>| p.map_or(-1.0, |p| (p - 0.5).abs());
    for same_fact in members.chunk_by(|a, b| a.0 == b.0) {
        let most_telling = same_fact
            .iter()
            .max_by(|a, b| telling(&a.2).total_cmp(&telling(&b.2)))
            .expect("chunks are not empty");
        votes.push((most_telling.1, most_telling.2));
    }
    votes
}

/// The facts of one message, joined when the message ties them together
/// (union-find).
#[derive(Default)]
struct Facts<'t> {
    ids: FxHashMap<&'t str, usize>,
    parent: Vec<usize>,
}

impl<'t> Facts<'t> {
    fn len(&self) -> usize {
        self.parent.len()
    }

    fn id(&mut self, fact: &'t str) -> usize {
        let next = self.parent.len();
        let id = *self.ids.entry(fact).or_insert(next);
        if id == next {
            self.parent.push(next);
        }
        id
    }

    fn root(&mut self, mut id: usize) -> usize {
        while self.parent[id] != id {
            self.parent[id] = self.parent[self.parent[id]];
            id = self.parent[id];
        }
        id
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        self.parent[a] = b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn once(tokens: &[(&'static str, Option<f64>)], params: &RobinsonParams) -> Vec<Option<f64>> {
        let mut reduced: Vec<Option<f64>> = once_per_fact(tokens.iter().copied(), params)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        reduced.sort_by(|a, b| a.unwrap_or(-1.0).total_cmp(&b.unwrap_or(-1.0)));
        reduced
    }

    #[test]
    fn a_fact_told_by_several_tokens_counts_once_by_the_most_telling() {
        let tokens = [
            ("to:fork", Some(0.01)),
            ("return-path:fork", Some(0.0001)),
            ("url:fork", None),
            ("url:lair.xent.com", Some(0.2)),
            ("url:xent.com", Some(0.9)),
            ("from:fork", Some(0.3)),
            ("viagra", Some(0.99)),
            ("url:unseen.example", None),
        ];
        let defaults = RobinsonParams::default();
        assert_eq!(
            once(&tokens, &defaults),
            [None, Some(0.0001), Some(0.3), Some(0.9), Some(0.99)]
        );
        let every_name = RobinsonParams {
            one_token_per_name: false,
            ..defaults
        };
        assert_eq!(
            once(&tokens, &every_name),
            [None, None, Some(0.0001), Some(0.01), Some(0.3), Some(0.9), Some(0.99)]
        );
        let every_token = RobinsonParams {
            one_token_per_site: false,
            ..every_name
        };
        assert_eq!(once(&tokens, &every_token).len(), tokens.len());
    }

    #[test]
    fn a_relay_named_in_received_words_is_its_site() {
        let tokens = [
            ("url:mandark.labs.example.net", Some(0.3)),
            ("url:example.net", Some(0.35)),
            ("received:mandark", Some(0.001)),
            ("received:labs", Some(0.01)),
            // the registered name's label too, as a host under it is named
            ("received:example", Some(0.02)),
            // a label of two sites names neither
            ("url:mail.lists.org", Some(0.8)),
            ("url:mail.shop.com", Some(0.9)),
            ("received:mail", Some(0.05)),
            // a registered domain named alone (an address's domain) does
            // not claim its label
            ("url:recipient.org", Some(0.6)),
            ("received:recipient", Some(0.03)),
            // only Received words are a relay's
            ("subject:labs", Some(0.2)),
        ];
        let defaults = RobinsonParams::default();
        assert_eq!(
            once(&tokens, &defaults),
            [
                Some(0.001),
                Some(0.03),
                Some(0.05),
                Some(0.2),
                Some(0.6),
                Some(0.8),
                Some(0.9)
            ]
        );
        let every_host = RobinsonParams {
            one_token_per_site: false,
            ..defaults
        };
        assert_eq!(once(&tokens, &every_host).len(), tokens.len());
    }

    #[test]
    fn an_address_and_its_words_are_one_name() {
        let tokens = [
            ("return-path:fork-admin@xent.com", Some(0.001)),
            ("return-path:fork", Some(0.01)),
            ("return-path:admin", Some(0.02)),
            ("to:fork", Some(0.03)),
            ("url:fork", Some(0.04)),
            ("url:xent.com", Some(0.2)),
            // a From address is not an addressing field's
            ("from:alice@example.org", Some(0.9)),
            ("from:alice", Some(0.8)),
            ("to:alice", Some(0.7)),
        ];
        let defaults = RobinsonParams::default();
        assert_eq!(
            once(&tokens, &defaults),
            [Some(0.001), Some(0.2), Some(0.7), Some(0.8), Some(0.9)]
        );
        let every_name = RobinsonParams {
            one_token_per_name: false,
            ..defaults
        };
        assert_eq!(once(&tokens, &every_name).len(), tokens.len());
    }

    proptest::proptest! {
        /// Any tokens — odd addresses, hosts, labels, repeats: every token
        /// is counted at most once, every vote is one of the message's own
        /// tokens and probabilities, and a token that states no shared fact
        /// always votes on its own.
        #[test]
        fn every_token_votes_once_at_most(
            tokens in proptest::collection::vec(
                ("(to|cc|return-path|url|received|from|)", "[a-z.@_-]{0,14}", proptest::option::of(0.0f64..1.0)),
                0..40,
            ),
        ) {
            let tokens: Vec<(String, Option<f64>)> = tokens
                .into_iter()
                .map(|(tag, text, p)| (if tag.is_empty() { text } else { format!("{tag}:{text}") }, p))
                .collect();
            let params = RobinsonParams::default();
            let votes = once_per_fact(tokens.iter().map(|(t, p)| (t.as_str(), *p)), &params);
            proptest::prop_assert!(votes.len() <= tokens.len());
            for (token, p) in &votes {
                proptest::prop_assert!(tokens.iter().any(|(t, q)| t == token && q == p));
            }
            let plain = tokens.iter().filter(|(t, _)| !t.contains(':')).count();
            let plain_votes = votes.iter().filter(|(t, _)| !t.contains(':')).count();
            proptest::prop_assert_eq!(plain, plain_votes);
        }
    }
}
