//! A user's filter: their token database (`bsfilter_home`, `~/.bsfilter`)
//! layered on the system-wide one, tokenized and scored as configured —
//! the same for lda's deliveries and imapd's training, which read and
//! teach the same databases.

use bsfilter::{Filter, FilterConfig};

use crate::config::Config;
use crate::users::User;

/// The filter for `user`: their token database layered on the system-wide
/// one, Japanese split as configured (shared with imapd, which trains the
/// same databases). Fails when the lindera dictionary can't be loaded.
pub fn for_user(config: &Config, user: &User) -> bsfilter::Result<Filter> {
    Ok(Filter::with_segmenter(
        filter_config(config, user),
        config.filter.japanese.segmenter()?,
    ))
}

fn filter_config(config: &Config, user: &User) -> FilterConfig {
    let settings = &config.filter;
    let mut fc = FilterConfig::new(user.expand(&settings.bsfilter_home));
    fc.system_db = settings.system_db.clone();
    fc.method = settings.method;
    fc.spam_cutoff = settings.spam_cutoff;
    fc.tokenizer.verdict_header_prefix = format!("x-{}-", settings.header_prefix.to_ascii_lowercase());
    fc.tokenizer.auth_results_id = settings.auth_results_id.clone();
    fc
}
