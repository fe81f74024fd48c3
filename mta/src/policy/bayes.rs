//! Site-wide Bayes: each message from outside (not from mynetworks, not
//! logged in) is scored at the end of DATA with the site's token database
//! (`site_bayes_db`: a bsfilter home or database file, the one lda layers
//! under every user as `[filter] system_db`), by the same filter and
//! settings as lda (`[filter]` method, cutoff, header prefix, Japanese
//! tokenizer). Its verdict is added as `X-Spam-Flag` and
//! `X-Spam-Probability`; above `site_bayes_reject_above` (off by default)
//! the message is refused with `550 5.7.1`. Such fields that came from
//! outside are removed first: at the site's edge any claim of the site's
//! verdict is forged. lda scores again for each user, layered on the same
//! database: the user's verdict replaces these fields and decides the
//! folder (and lda removes them when its filter is off, as it removes
//! every verdict it did not write).
//!
//! The site's database is the system layer under an empty user layer, so
//! a message scores here exactly as lda would score it for a user who has
//! taught nothing.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use bsfilter::{Filter, FilterConfig};

use super::{Facts, Point, Stage, Verdict};
use crate::smtp::reply::Reply;

pub struct SiteBayes {
    filter: Arc<Filter>,
    reject_above: Option<f64>,
    header_prefix: String,
}

impl SiteBayes {
    pub fn open(
        db: &Path,
        reject_above: Option<f64>,
        settings: &lda::config::FilterSettings,
    ) -> Result<SiteBayes, String> {
        if !db.exists() {
            return Err(format!(
                "[mtad] site_bayes_db: {}: no such database (train it with bsfilter --homedir)",
                db.display()
            ));
        }
        // no user layer: a home that cannot exist
        let mut config = FilterConfig::new("/nonexistent/mtad-site-bayes".into());
        config.system_db = Some(db.to_owned());
        config.method = settings.method;
        config.spam_cutoff = settings.spam_cutoff;
        config.tokenizer.verdict_header_prefix = format!("x-{}-", settings.header_prefix.to_ascii_lowercase());
        let segmenter = settings
            .japanese
            .segmenter()
            .map_err(|e| format!("[filter] japanese: {e}"))?;
        Ok(SiteBayes {
            filter: Arc::new(Filter::with_segmenter(config, segmenter)),
            reject_above,
            header_prefix: settings.header_prefix.clone(),
        })
    }

    /// The verdict on `message` (CPU work: run off the async threads).
    fn score(filter: &Filter, message: &[u8], sender: Option<&str>) -> bsfilter::Result<bsfilter::Verdict> {
        let analyzed = filter.analyze(message, sender);
        let verdicts = filter.classifier(1)?.classify(&[&analyzed])?;
        Ok(verdicts.into_iter().next().expect("one verdict per message"))
    }
}

impl Stage for SiteBayes {
    fn name(&self) -> &'static str {
        "site_bayes"
    }

    fn check<'a>(&'a self, point: Point, facts: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            let (Point::Data, Some(message), false) = (point, &facts.message, facts.trusted) else {
                return Verdict::Continue;
            };
            let filter = self.filter.clone();
            let shared = message.clone();
            let sender = facts.sender.clone().filter(|s| !s.is_empty());
            let scored =
                tokio::task::spawn_blocking(move || SiteBayes::score(&filter, &shared, sender.as_deref())).await;
            let verdict = match scored {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    // as lda: mail is never lost to a filter that cannot run
                    tracing::error!(stage = "site_bayes", "scoring failed, the message passes unscored: {e}");
                    return Verdict::Continue;
                }
                Err(e) => {
                    tracing::error!(stage = "site_bayes", "scoring failed, the message passes unscored: {e}");
                    return Verdict::Continue;
                }
            };
            if let Some(limit) = self.reject_above
                && verdict.probability > limit
            {
                tracing::info!(
                    event = "site_bayes",
                    probability = verdict.probability,
                    client = ?facts.client_addr,
                    from = ?facts.sender,
                    "refused as spam"
                );
                return Verdict::Reject(Reply::new(
                    550,
                    [5, 7, 1],
                    format!(
                        "message content rejected: spam (probability {:.3})",
                        verdict.probability
                    ),
                ));
            }
            let p = &self.header_prefix;
            let names = [
                format!("X-{p}-Flag"),
                format!("X-{p}-Probability"),
                format!("X-{p}-Filter-Error"),
            ];
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut effects = Vec::new();
            let unforged = bsfilter::headers::remove_fields(message.as_slice(), &names);
            if unforged.len() != message.len() {
                effects.push(Verdict::Rewrite(unforged));
            }
            effects.push(Verdict::AddHeaders(vec![
                format!("{}: {}", names[0], if verdict.is_spam { "Yes" } else { "No" }),
                format!("{}: {:.6}", names[1], verdict.probability),
            ]));
            Verdict::Several(effects)
        })
    }
}
