//! The tarpit: a client that `tarpit_clients` tables list (S25R's regexps
//! of dynamic-looking names, the 2004 Japanese method's "delay" option)
//! waits `tarpit_delay` before the greeting and before each answer to
//! HELO, MAIL and RCPT. A real mail server waits (RFC 5321 §4.5.3.2 gives
//! it five minutes for each); spamware, which sends to many sites from
//! one machine at once, gives up or is slowed. The wait costs the server
//! a timer, not a thread. Off unless a table is configured.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::table::Table;
use super::{Facts, Point, Stage, Verdict};

pub struct Tarpit {
    delay: Duration,
    clients: Vec<Table>,
}

impl Tarpit {
    pub fn new(delay: Duration, clients: Vec<Table>) -> Tarpit {
        Tarpit { delay, clients }
    }
}

impl Stage for Tarpit {
    fn name(&self) -> &'static str {
        "tarpit"
    }

    fn check<'a>(&'a self, point: Point, facts: &'a Facts) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            if point != Point::Data && super::client_listed(&self.clients, facts) {
                if point == Point::Connect {
                    tracing::info!(
                        event = "tarpit",
                        client = %format!("{}[{}]", facts.client_name, facts.client_addr.map(|a| a.to_string()).unwrap_or_default()),
                        delay = self.delay.as_secs(),
                        "tarpitted"
                    );
                }
                tokio::time::sleep(self.delay).await;
            }
            Verdict::Continue
        })
    }
}
