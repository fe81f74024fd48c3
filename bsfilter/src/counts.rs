//! What a token database counts: per token, the messages of each class
//! that contained it; per database, the messages learned. The store keeps
//! them, the snapshot maps a copy, the scores read them.

/// A message class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Spam,
    Clean,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Clean => "clean",
        }
    }
}

/// Per-token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub spam: u64,
    pub clean: u64,
}

impl Counts {
    pub fn get(&self, class: Class) -> u64 {
        match class {
            Class::Spam => self.spam,
            Class::Clean => self.clean,
        }
    }
}

/// Message totals and store size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub spam_messages: u64,
    pub clean_messages: u64,
}
