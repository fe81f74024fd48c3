//! Scoring: per-token spam probabilities and their combination, by the
//! original bsfilter's three methods. Pure arithmetic, no I/O.
//!
//! **Layering.** When both a user database and the system-wide database
//! exist, each token's probability comes from the user's evidence first:
//! - Robinson and Robinson-Fisher: the system's estimate f_sys(w) is the
//!   prior of the user's, weighted as [`LAYER_STRENGTH`] observations:
//!   f(w) = (S·f_sys + n·p_user) / (S + n), n = the user's messages with w.
//!   A token the user never saw scores as the system says; a few user
//!   observations already outweigh the system.
//! - Graham: the user's probability when the user has enough evidence for
//!   one (Graham's own threshold: more than 5 messages), else the system's,
//!   else the default 0.4.

use crate::store::{Counts, Totals};

/// Weight of the system-wide estimate, in user observations.
pub const LAYER_STRENGTH: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Paul Graham, "A Plan for Spam".
    Graham,
    /// Gary Robinson's geometric-mean combination.
    Robinson,
    /// Robinson's f(w) combined by Fisher's chi-square method.
    RobinsonFisher,
}

impl Method {
    /// `g`, `r` or `rf`, as the original's `--method`.
    pub fn parse(name: &str) -> Option<Method> {
        match name {
            "g" => Some(Method::Graham),
            "r" => Some(Method::Robinson),
            "rf" => Some(Method::RobinsonFisher),
            _ => None,
        }
    }

    /// The original's spam cutoffs.
    pub fn default_cutoff(self) -> f64 {
        match self {
            Method::Graham => 0.9,
            Method::Robinson => 0.582,
            Method::RobinsonFisher => 0.95,
        }
    }
}

/// Robinson's parameters, the original bsfilter's values.
#[derive(Debug, Clone, Copy)]
pub struct RobinsonParams {
    /// Strength of the prior (s), in messages.
    pub robs: f64,
    /// Extra strength of the prior in a young database: `young_prior /
    /// min(spam messages, ham messages)` is added to `robs` (see
    /// [`RobinsonParams::prior_strength`]). 0 = the original's constant s.
    pub young_prior: f64,
    /// Probability of a token never seen (x).
    pub robx: f64,
    /// Tokens with |f(w) − 0.5| ≤ min_dev are ignored.
    pub min_dev: f64,
    /// Combine at most this many tokens, the most telling first (0 = all).
    pub max_tokens: usize,
    /// Fisher only: effective size factor (bogofilter's ESF) for the spam
    /// and the ham tail. A message's tokens are not independent evidence;
    /// counting n of them as `esf · n` keeps correlated tokens from
    /// pushing both tails to certainty. 1.0 = plain Fisher.
    pub spam_esf: f64,
    pub ham_esf: f64,
    /// Fisher only: when both tails reject their hypothesis (the
    /// message fits neither "ham" nor "spam", which Fisher scores near
    /// 0.5 from a difference of two small tails), order the message by
    /// Robinson's geometric means R instead, inside Fisher's own band:
    /// 0.5 + α·(R − 0.5), α = [`RobinsonParams::conflict_tail`], within
    /// α/2 of 0.5 as Fisher's score is. On by default: the same verdicts
    /// (the band is far below the cutoff), but such messages are ranked by
    /// their balance (BENCHMARKS.md); off = the original's Fisher.
    pub conflict_fallback: bool,
    /// The level α at which both tails reject their hypothesis (see
    /// `conflict_fallback`). 0.1: with 10⁻³ (strong evidence both ways
    /// only) messages whose tails were both near 0.01 kept Fisher's order,
    /// which ranked them worse in all three evaluation settings; 0.05–0.3
    /// did about equally well (BENCHMARKS.md).
    pub conflict_tail: f64,
    /// Fisher only: a message whose evidence rejects ham and not spam by
    /// three orders of magnitude (ham tail ≤ 10⁻³ × spam tail, spam tail ≥
    /// 10⁻³) is spam, scored just above the original's cutoff (0.95–0.96,
    /// in Fisher's order), where Fisher's (1 + S − H)/2 kept it below
    /// 0.95 unless the spam tail S was above 0.9: the spam that fits spam
    /// only moderately — a few hammy words among spammy ones — and ham
    /// not at all. Cross-validation: 115 of 227 false negatives at 0.95
    /// were such, against 2 of 4,150 ham (BENCHMARKS.md). Off = Fisher's
    /// score as it is.
    pub one_sided_spam: bool,
    /// A host's `url:` tokens — its name and each parent domain — count
    /// once per message, by the most telling of them
    /// ([`crate::tokenize::site_of`]). Why: the combination takes tokens
    /// for independent evidence, and `url:mx.lists.example.net`,
    /// `url:lists.example.net` and `url:example.net` are one fact said
    /// three times — for every relay of a list server or of the site's own
    /// mail path. The `Received` words of such a host's name count with
    /// its site too (see `filter::once_per_fact`). On by default
    /// (BENCHMARKS.md); off = every token counts, as the original.
    pub one_token_per_site: bool,
    /// A word repeated across the addressing fields — `To`, `Cc`,
    /// `Return-Path` and URLs ([`crate::tokenize::name_of`]) — counts once
    /// per message, by the most telling of its tokens. Why: a mailing
    /// list's name is in the recipient, in the bounce address and in the
    /// list's links, `to:fork`, `return-path:fork`, `url:fork`: one fact
    /// said three times, which made a spam posted to a list the user
    /// reads score as ham as firmly as the list's own mail. On by default
    /// (BENCHMARKS.md); off = every token counts, as the original.
    pub one_token_per_name: bool,
}

impl RobinsonParams {
    /// Robinson's s for a database with these totals: `robs`, plus
    /// `young_prior` messages' worth at the resolution of the smaller
    /// class. Why: p(w) compares a token's frequency among the spam with
    /// its frequency among the ham, and a frequency among S messages moves
    /// in steps of 1/S. With the original's s = 0.001 a database of 2 spam
    /// and 5 ham called every word of its ham missing from its two spam
    /// (`the`, `for`) certain ham, and a new user's first filtered spam
    /// scored 0.0000. The extra weight fades as the database grows (1,000
    /// messages of the smaller class: +0.001), so a trained database
    /// scores as the original's formula does.
    pub fn prior_strength(&self, totals: Totals) -> f64 {
        let smaller = totals.spam_messages.min(totals.clean_messages).max(1);
        self.robs + self.young_prior / smaller as f64
    }
}

impl Default for RobinsonParams {
    fn default() -> Self {
        RobinsonParams {
            robs: 0.001,
            young_prior: 1.0,
            robx: 0.415,
            min_dev: 0.1,
            max_tokens: 0,
            spam_esf: 1.0,
            ham_esf: 1.0,
            conflict_fallback: true,
            conflict_tail: 0.1,
            one_sided_spam: true,
            one_token_per_site: true,
            one_token_per_name: true,
        }
    }
}

/// One database's counts for a token.
#[derive(Debug, Clone, Copy)]
pub struct Evidence {
    pub counts: Counts,
    pub totals: Totals,
}

impl Evidence {
    /// Messages of each class containing the token, capped by the class's
    /// message count (imported counts of the original are occurrences).
    fn clamped(&self) -> (f64, f64) {
        let spam = self.counts.spam.min(self.totals.spam_messages) as f64;
        let clean = self.counts.clean.min(self.totals.clean_messages) as f64;
        (spam, clean)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Scorer {
    pub method: Method,
    pub robinson: RobinsonParams,
}

impl Scorer {
    pub fn new(method: Method) -> Scorer {
        Scorer {
            method,
            robinson: RobinsonParams::default(),
        }
    }

    /// The probability that a message containing the token is spam, from
    /// the user's and (optionally) the system's evidence; `None` when
    /// neither knows it.
    pub fn token_probability(&self, user: Option<Evidence>, system: Option<Evidence>) -> Option<f64> {
        match self.method {
            Method::Graham => user
                .and_then(graham_probability)
                .or_else(|| system.and_then(graham_probability)),
            Method::Robinson | Method::RobinsonFisher => {
                let p = &self.robinson;
                let s_of = |e: Evidence| p.prior_strength(e.totals);
                let f_sys = system
                    .and_then(|e| robinson_pw(e, false).map(|(pw, n)| (s_of(e) * p.robx + n * pw) / (s_of(e) + n)));
                match user.and_then(|e| robinson_pw(e, f_sys.is_some()).map(|pw_n| (e, pw_n))) {
                    None => f_sys,
                    Some((e, (pw, n))) => {
                        let (prior, strength) = match f_sys {
                            Some(f) => (f, LAYER_STRENGTH),
                            None => (p.robx, s_of(e)),
                        };
                        Some((strength * prior + n * pw) / (strength + n))
                    }
                }
            }
        }
    }

    /// Combines token probabilities (`None` = unknown token) into the
    /// message's spam probability.
    pub fn combine(&self, probabilities: impl Iterator<Item = Option<f64>>) -> f64 {
        self.combine_with_strength(probabilities).probability
    }

    /// The message's spam probability and the strength of the evidence
    /// behind it.
    pub fn combine_with_strength(&self, probabilities: impl Iterator<Item = Option<f64>>) -> Combined {
        self.combine_weighted(probabilities.map(|p| (p, 1.0)))
    }

    /// As [`Scorer::combine_with_strength`], each token probability with
    /// its weight as evidence: 1 for a token that states something on its
    /// own, less for one that shares what it states with its neighbours
    /// (see [`crate::tokenize::Segmenter::weight`]). Robinson's and
    /// Fisher's methods weigh each token's log-probability and count the
    /// weights as the number of tokens; Graham's takes every token whole.
    pub fn combine_weighted(&self, votes: impl Iterator<Item = (Option<f64>, f64)>) -> Combined {
        match self.method {
            Method::Graham => {
                let mut probs: Vec<f64> = votes.map(|(p, _)| p.unwrap_or(GRAHAM_UNKNOWN)).collect();
                probs.sort_by(|a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
                probs.truncate(15);
                let (mut ln_p, mut ln_q) = (0.0f64, 0.0f64);
                for p in probs {
                    ln_p += p.ln();
                    ln_q += (1.0 - p).ln();
                }
                // p / (p + q), computed without underflow
                Combined {
                    probability: 1.0 / (1.0 + (ln_q - ln_p).exp()),
                    strength: ln_p - ln_q,
                }
            }
            Method::Robinson | Method::RobinsonFisher => {
                let params = &self.robinson;
                let mut telling: Vec<(f64, f64)> = votes
                    .map(|(f, w)| (f.unwrap_or(params.robx), w))
                    .filter(|(f, _)| (f - 0.5).abs() > params.min_dev)
                    .collect();
                if params.max_tokens > 0 && telling.len() > params.max_tokens {
                    telling.sort_unstable_by(|a, b| (b.0 - 0.5).abs().total_cmp(&(a.0 - 0.5).abs()));
                    telling.truncate(params.max_tokens);
                }
                let (mut ln_not_spam, mut ln_spam, mut weight) = (0.0f64, 0.0f64, 0.0f64);
                for (f, w) in telling {
                    let f = f.clamp(1e-7, 1.0 - 1e-7);
                    ln_not_spam += w * (1.0 - f).ln();
                    ln_spam += w * f.ln();
                    weight += w;
                }
                if weight == 0.0 {
                    // no evidence either way: neither spam nor ham, ranked
                    // between them and below every method's spam cutoff
                    return Combined {
                        probability: 0.5,
                        strength: 0.0,
                    };
                }
                let fisher_tails = (self.method == Method::RobinsonFisher).then(|| {
                    // chi-square degrees of freedom: two per (weighted) token
                    let effective = |esf: f64| ((weight * esf).round() as usize).max(1);
                    let ln_spam_tail = ln_chi2q(-2.0 * params.spam_esf * ln_spam, effective(params.spam_esf));
                    let ln_ham_tail = ln_chi2q(-2.0 * params.ham_esf * ln_not_spam, effective(params.ham_esf));
                    (ln_spam_tail, ln_ham_tail)
                });
                let ln_alpha = params.conflict_tail.ln();
                let combined = match fisher_tails {
                    Some((ln_spam_tail, ln_ham_tail))
                        if !(params.conflict_fallback && ln_spam_tail < ln_alpha && ln_ham_tail < ln_alpha) =>
                    {
                        // Fisher: each side's chi-square tail; the message is
                        // as spammy as its tokens are unlikely under "ham" and
                        // likely under "spam". The tails are kept as
                        // logarithms for the strength, which the probability
                        // (a difference of tails near 1) cannot resolve for
                        // strong evidence.
                        Combined {
                            probability: (1.0 + ln_spam_tail.exp() - ln_ham_tail.exp()) / 2.0,
                            strength: ln_spam_tail - ln_ham_tail,
                        }
                    }
                    _ => {
                        let p = -(ln_not_spam / weight).exp_m1();
                        let q = -(ln_spam / weight).exp_m1();
                        if p + q == 0.0 {
                            return Combined {
                                probability: 0.5,
                                strength: 0.0,
                            };
                        }
                        let robinson = (1.0 + (p - q) / (p + q)) / 2.0;
                        // Fisher's band for a message that fits neither class
                        let band = if fisher_tails.is_some() {
                            params.conflict_tail
                        } else {
                            1.0
                        };
                        Combined {
                            probability: 0.5 + band * (robinson - 0.5),
                            strength: p.ln() - q.ln(),
                        }
                    }
                };
                match fisher_tails {
                    Some((ln_spam_tail, ln_ham_tail)) if params.one_sided_spam => {
                        // the lowest score such tails can have: the bottom
                        // of Fisher's band, or 0.5 without it
                        let lowest = if params.conflict_fallback {
                            0.5 - params.conflict_tail / 2.0
                        } else {
                            0.5
                        };
                        one_sided(combined, lowest, ln_spam_tail, ln_ham_tail)
                    }
                    _ => combined,
                }
            }
        }
    }
}

/// [`RobinsonParams::one_sided_spam`]: a message whose ham tail is at most
/// [`ONE_SIDED_LEVEL`] times its spam tail, the spam tail itself not below
/// that level, scores in [`ONE_SIDED_BAND`] — just above the original's
/// cutoff 0.95 — in the order of its score (at least `lowest` for such
/// tails).
fn one_sided(combined: Combined, lowest: f64, ln_spam_tail: f64, ln_ham_tail: f64) -> Combined {
    let ln_level = ONE_SIDED_LEVEL.ln();
    let spam_beats_ham = ln_spam_tail >= ln_level && ln_ham_tail <= ln_spam_tail + ln_level;
    if !spam_beats_ham || combined.probability > ONE_SIDED_BAND.0 {
        return combined;
    }
    let (low, high) = ONE_SIDED_BAND;
    let position = ((combined.probability - lowest) / (low - lowest)).clamp(0.0, 1.0);
    Combined {
        probability: low + (high - low) * (0.5 + position / 2.0),
        ..combined
    }
}

/// How much likelier spam must be than ham, and how likely at least, for
/// [`RobinsonParams::one_sided_spam`]: three orders of magnitude, the
/// level at which Fisher's tails are read as rejecting a hypothesis.
const ONE_SIDED_LEVEL: f64 = 1e-3;

/// Where [`RobinsonParams::one_sided_spam`] puts such messages: above
/// Robinson-Fisher's default cutoff, below the evidence Fisher itself
/// scores higher.
const ONE_SIDED_BAND: (f64, f64) = (0.95, 0.96);

/// A message's combined score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Combined {
    /// Spam probability, the original's scale (cutoffs apply to it).
    pub probability: f64,
    /// A log-odds-like measure of the same verdict that keeps growing
    /// where the probability has saturated at 0 or 1: it ranks messages
    /// (ROC, AUC) and is positive for spam-leaning evidence.
    pub strength: f64,
}

/// Graham's probability of a token never seen.
const GRAHAM_UNKNOWN: f64 = 0.4;

/// The original's Graham table entry: `None` below its evidence threshold.
fn graham_probability(e: Evidence) -> Option<f64> {
    let (s, c) = (e.counts.spam, e.counts.clean);
    match (s, c) {
        (s, 0) if s > 10 => Some(0.9999),
        (s, 0) if s > 5 => Some(0.9998),
        (0, c) if c > 10 => Some(0.0001),
        (0, c) if c > 5 => Some(0.0002),
        (s, c) if s > 0 && c > 0 && s + c > 5 => {
            let snum = e.totals.spam_messages.max(1) as f64;
            let cnum = e.totals.clean_messages.max(1) as f64;
            let bad = (s as f64 / snum).min(1.0);
            let good = (2.0 * c as f64 / cnum).min(1.0);
            Some((bad / (good + bad)).clamp(0.0001, 0.9999))
        }
        _ => None,
    }
}

/// Robinson's p(w) and the evidence n behind it; `None` when n = 0.
/// p(w) compares the token's frequency in spam with its frequency in ham,
/// so a database that has seen only one class cannot tell one from the
/// other (it would call every token it knows 1 or 0): alone, it gives
/// `None`. Layered over the system's database (`beside_system`), a user's
/// one-class evidence still says "this is what my spam (or ham) looks
/// like", and the system's estimate is its counterweight.
fn robinson_pw(e: Evidence, beside_system: bool) -> Option<(f64, f64)> {
    let (b, g) = e.clamped();
    let n = b + g;
    let one_class = e.totals.spam_messages == 0 || e.totals.clean_messages == 0;
    if n == 0.0 || (one_class && !beside_system) {
        return None;
    }
    let bad = b / e.totals.spam_messages.max(1) as f64;
    let good = g / e.totals.clean_messages.max(1) as f64;
    Some((bad / (bad + good), n))
}

/// Natural logarithm of the upper tail of the chi-square distribution with
/// 2·n degrees of freedom at x2, summed in log space so thousands of tokens
/// neither overflow nor underflow.
fn ln_chi2q(x2: f64, n: usize) -> f64 {
    let m = x2 / 2.0;
    if m <= 0.0 {
        return 0.0;
    }
    let ln_m = m.ln();
    // log-sum-exp over the terms e^-m m^i / i!, i < n
    let mut ln_term = -m;
    let mut max = ln_term;
    let mut terms = Vec::with_capacity(n);
    terms.push(ln_term);
    for i in 1..n {
        ln_term += ln_m - (i as f64).ln();
        max = max.max(ln_term);
        terms.push(ln_term);
    }
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    (max + sum.ln()).min(0.0)
}

/// The upper tail itself.
#[cfg(test)]
fn chi2q(x2: f64, n: usize) -> f64 {
    ln_chi2q(x2, n).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(spam: u64, clean: u64, spam_messages: u64, clean_messages: u64) -> Option<Evidence> {
        Some(Evidence {
            counts: Counts { spam, clean },
            totals: Totals {
                spam_messages,
                clean_messages,
            },
        })
    }

    #[test]
    fn chi2q_matches_known_values() {
        // chi-square upper tail, 2 d.o.f.: exp(-x/2)
        assert!((chi2q(2.0, 1) - (-1.0f64).exp()).abs() < 1e-12);
        // 4 d.o.f. at x=4: e^-2 (1 + 2)
        assert!((chi2q(4.0, 2) - 3.0 * (-2.0f64).exp()).abs() < 1e-12);
        assert_eq!(chi2q(0.0, 5), 1.0);
        // huge arguments do not produce NaN
        assert!(chi2q(1e6, 3000).is_finite());
    }

    #[test]
    fn robinson_fisher_separates() {
        let s = Scorer::new(Method::RobinsonFisher);
        let spammy = s.token_probability(ev(90, 1, 100, 100), None).unwrap();
        let hammy = s.token_probability(ev(1, 90, 100, 100), None).unwrap();
        assert!(spammy > 0.98 && hammy < 0.02, "{spammy} {hammy}");
        assert!(s.combine(std::iter::repeat_n(Some(spammy), 20)) > 0.99);
        assert!(s.combine(std::iter::repeat_n(Some(hammy), 20)) < 0.01);
        // unknown tokens alone: robx is within min_dev of 0.5, nothing
        // counts, and no evidence is no lean either way
        assert_eq!(s.combine(std::iter::repeat_n(None, 5)), 0.5);
        assert_eq!(s.combine(std::iter::empty()), 0.5);
        // a database that has seen one class only tells nothing about a token
        assert_eq!(s.token_probability(ev(3, 0, 5, 0), None), None);
        assert_eq!(s.token_probability(ev(0, 3, 0, 5), None), None);
        // over the system's database a user's one class still counts
        let system = s.token_probability(ev(9, 1, 10, 10), None).unwrap();
        let layered = s.token_probability(ev(0, 3, 0, 5), ev(9, 1, 10, 10)).unwrap();
        assert!(layered < system / 2.0, "{layered} {system}");
        // many strong tokens: no NaN
        let p = s.combine(std::iter::repeat_n(Some(0.9999999), 5000));
        assert!(p > 0.99 && p.is_finite());
    }

    #[test]
    fn effective_size_and_conflict_knobs() {
        let plain = Scorer::new(Method::RobinsonFisher);
        let mut shrunk = Scorer::new(Method::RobinsonFisher);
        shrunk.robinson.spam_esf = 0.3;
        shrunk.robinson.ham_esf = 0.3;
        // mildly spammy evidence: fewer effective tokens, less certainty
        let tokens = || std::iter::repeat_n(Some(0.7), 10);
        assert!(shrunk.combine(tokens()) < plain.combine(tokens()));
        // strong evidence both ways: Fisher says 0.5 whatever the balance;
        // the fallback follows the balance
        let conflict = || std::iter::repeat_n(Some(0.9999), 60).chain(std::iter::repeat_n(Some(0.0001), 40));
        let mut fisher = Scorer::new(Method::RobinsonFisher);
        fisher.robinson.conflict_fallback = false;
        assert!((fisher.combine(conflict()) - 0.5).abs() < 1e-6);
        // the fallback follows the balance, inside Fisher's band for a
        // message that fits neither class (0.5 ± α/2)
        let fallback = Scorer::new(Method::RobinsonFisher);
        let half_band = fallback.robinson.conflict_tail / 2.0;
        let spammier = fallback.combine(conflict());
        let mirrored = std::iter::repeat_n(Some(0.9999), 40).chain(std::iter::repeat_n(Some(0.0001), 60));
        let hammier = fallback.combine(mirrored);
        assert!(spammier > 0.5 + 1e-4 && spammier < 0.5 + half_band, "{spammier}");
        assert!(hammier < 0.5 - 1e-4 && hammier > 0.5 - half_band, "{hammier}");
        // evidence that fits one class is Fisher's, outside the band
        let plain_spam = fallback.combine(std::iter::repeat_n(Some(0.9), 30));
        assert!(plain_spam > 0.95, "{plain_spam}");
    }

    #[test]
    fn spam_that_rejects_ham_by_far_passes_the_cutoff() {
        let tokens = |spammy: usize, hammy: usize, hammy_p: f64| {
            std::iter::repeat_n(Some(0.99), spammy).chain(std::iter::repeat_n(Some(hammy_p), hammy))
        };
        let mut fisher_only = Scorer::new(Method::RobinsonFisher);
        fisher_only.robinson.one_sided_spam = false;
        let one_sided = Scorer::new(Method::RobinsonFisher);
        // ham tail ~1e-13, spam tail 0.22: Fisher says 0.61
        let moderate = fisher_only.combine(tokens(20, 12, 0.05));
        assert!(moderate > 0.55 && moderate < 0.7, "{moderate}");
        let lifted = one_sided.combine(tokens(20, 12, 0.05));
        assert!(lifted > 0.95 && lifted <= 0.96, "{lifted}");
        // the order among such messages is Fisher's
        let stronger = one_sided.combine(tokens(20, 14, 0.1));
        assert!(fisher_only.combine(tokens(20, 14, 0.1)) > moderate && stronger > lifted);
        // Fisher's own verdicts above 0.96 stay as they are
        assert_eq!(
            one_sided.combine(tokens(20, 8, 0.2)),
            fisher_only.combine(tokens(20, 8, 0.2))
        );
        // both hypotheses fit (spam tail 0.29, ham tail 0.08): no verdict
        let mixed = || std::iter::repeat_n(Some(0.01), 5).chain(std::iter::repeat_n(Some(0.8), 20));
        assert_eq!(one_sided.combine(mixed()), fisher_only.combine(mixed()));
        assert!(one_sided.combine(mixed()) < 0.95);
        // the mirror image (spam rejected by far) is left to Fisher
        let hammy = || std::iter::repeat_n(Some(0.01), 20).chain(std::iter::repeat_n(Some(0.95), 12));
        assert_eq!(one_sided.combine(hammy()), fisher_only.combine(hammy()));
    }

    #[test]
    fn weights_count_tokens_fractionally() {
        let s = Scorer::new(Method::RobinsonFisher);
        let whole = s.combine_weighted([(Some(0.99), 1.0), (Some(0.2), 1.0)].into_iter());
        let halves = s.combine_weighted([(Some(0.99), 0.5), (Some(0.99), 0.5), (Some(0.2), 1.0)].into_iter());
        assert!((whole.probability - halves.probability).abs() < 1e-12);
        assert!((whole.strength - halves.strength).abs() < 1e-12);
        // half-weight tokens move the score half as far as whole ones
        let ten = s.combine_weighted(std::iter::repeat_n((Some(0.99), 1.0), 10));
        let ten_halves = s.combine_weighted(std::iter::repeat_n((Some(0.99), 0.5), 10));
        let five = s.combine_weighted(std::iter::repeat_n((Some(0.99), 1.0), 5));
        assert!((ten_halves.strength - five.strength).abs() < 1e-12);
        assert!(ten_halves.strength < ten.strength);
    }

    #[test]
    fn young_database_is_not_certain() {
        let s = Scorer::new(Method::RobinsonFisher);
        // in 1 of 5 ham, none of 2 spam: a hint, not a verdict
        let young = s.token_probability(ev(0, 1, 2, 5), None).unwrap();
        assert!(young > 0.1 && young < 0.415, "{young}");
        // the same count beside 2,000 messages of each class: strong
        let grown = s.token_probability(ev(0, 1, 2000, 2000), None).unwrap();
        assert!(grown < 0.001, "{grown}");
        // without the extra weight, the original's constant s
        let mut original = Scorer::new(Method::RobinsonFisher);
        original.robinson.young_prior = 0.0;
        assert!(original.token_probability(ev(0, 1, 2, 5), None).unwrap() < 0.001);
    }

    #[test]
    fn strength_orders_what_the_probability_cannot() {
        let s = Scorer::new(Method::RobinsonFisher);
        let some = s.combine_with_strength(std::iter::repeat_n(Some(0.999), 200));
        let more = s.combine_with_strength(std::iter::repeat_n(Some(0.999), 400));
        // both saturated: f64 cannot tell them apart by probability
        assert!(some.probability > 1.0 - 1e-12 && more.probability > 1.0 - 1e-12);
        assert!(
            more.strength > some.strength && some.strength > 0.0,
            "{some:?} {more:?}"
        );
        let hammy = s.combine_with_strength(std::iter::repeat_n(Some(0.001), 200));
        assert!(hammy.probability < 1e-12 && hammy.strength < 0.0, "{hammy:?}");
        for method in [Method::Graham, Method::Robinson] {
            let m = Scorer::new(method);
            let c = m.combine_with_strength([Some(0.99), Some(0.95), Some(0.3)].into_iter());
            assert!(c.probability > 0.5 && c.strength > 0.0, "{method:?}: {c:?}");
        }
    }

    #[test]
    fn graham_matches_the_original_table() {
        let s = Scorer::new(Method::Graham);
        assert_eq!(s.token_probability(ev(11, 0, 50, 50), None), Some(0.9999));
        assert_eq!(s.token_probability(ev(3, 0, 50, 50), None), None);
        assert_eq!(s.token_probability(ev(0, 6, 50, 50), None), Some(0.0002));
        let p = s.combine([Some(0.9999), Some(0.9999), None].into_iter());
        assert!(p > 0.99);
    }

    #[test]
    fn robinson_in_range() {
        let s = Scorer::new(Method::Robinson);
        let p = s.combine([Some(0.99), Some(0.2), Some(0.95)].into_iter());
        assert!(p > 0.5 && p < 1.0, "{p}");
    }

    #[test]
    fn layering_user_first_system_as_prior() {
        let s = Scorer::new(Method::RobinsonFisher);
        let system_spammy = ev(50, 0, 100, 100);
        // the user never saw it: the system decides
        let only_system = s.token_probability(ev(0, 0, 10, 10), system_spammy).unwrap();
        assert!(only_system > 0.99);
        // one user observation as clean pulls it toward clean but not all the way
        let one = s.token_probability(ev(0, 1, 10, 10), system_spammy).unwrap();
        assert!(one < only_system && one > 0.5, "{one}");
        // ten user observations decide
        let ten = s.token_probability(ev(0, 10, 10, 10), system_spammy).unwrap();
        assert!(ten < 0.2, "{ten}");
        // Graham: user's entry when it has one, else the system's
        let g = Scorer::new(Method::Graham);
        assert_eq!(g.token_probability(ev(0, 0, 10, 10), ev(20, 0, 100, 100)), Some(0.9999));
        assert_eq!(
            g.token_probability(ev(0, 20, 100, 100), ev(20, 0, 100, 100)),
            Some(0.0001)
        );
    }
}
