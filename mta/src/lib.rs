//! mtad: the SMTP server with its policy chain, durable queue and delivery. (Filled by a later issue.)
