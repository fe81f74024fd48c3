//! bsfilter-eval: corpus readers and evaluation against peers. (Filled by the corpus issue.)
