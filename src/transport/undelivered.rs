//! [`Undelivered`]: the records one cluster's producer could not deliver — counted, and logged
//! one line per *episode* per topic rather than one per record.
//!
//! A destination that is down fails every record queued for it once `message.timeout.ms` is
//! over: tens of thousands at once for a busy app. A line per record buries the log, and in a
//! Python app each line is a GIL acquisition through the logging bridge, on the thread that
//! serves delivery reports. So the first failure of an episode is an ERROR line naming the
//! topic and the error, the failures after it are counted (with a reminder line now and then
//! while they go on), and the first delivery to that topic that goes through closes the
//! episode with one line saying how many records failed and for how long. An episode starts
//! when its first failed record was *sent*, not when its failure was reported: a record to a
//! dead cluster fails only once `message.timeout.ms` is over, and the outage the operator
//! wants to know about began then. What becomes of the
//! inputs is the consumer loop's business (it holds them back and reads them again), logged
//! there.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often an episode that goes on says so again.
const REMINDER_EVERY: Duration = Duration::from_secs(60);

/// The failed deliveries of one cluster's producer client.
#[derive(Debug)]
pub struct Undelivered {
    cluster: String,
    total: AtomicU64,
    /// Whether some topic's episode is open: the per-record path of a delivery that went
    /// through reads only this.
    any_open: AtomicBool,
    open: Mutex<HashMap<String, Episode>>,
}

#[derive(Debug)]
struct Episode {
    since: Instant,
    failed: u64,
    first_error: String,
    last_said: Instant,
}

impl Undelivered {
    /// Nothing failed yet on the cluster `cluster` (its bootstrap servers, for the log).
    pub fn new(cluster: impl fmt::Display) -> Self {
        Self {
            cluster: cluster.to_string(),
            total: AtomicU64::new(0),
            any_open: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// How many records failed so far, in every episode.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// `count` records to `topic` were not delivered, for `error`; the first of them was sent
    /// `sent_ago` before now (zero for a record refused when it was sent).
    pub fn failed(&self, topic: &str, count: u64, error: &dyn fmt::Display, sent_ago: Duration) {
        self.total.fetch_add(count, Ordering::Relaxed);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match open.get_mut(topic) {
            None => {
                tracing::error!(
                    cluster = %self.cluster,
                    topic,
                    %error,
                    "records to '{topic}' are not being delivered (the first failed {:.1?} \
                     after it was sent); counting them until deliveries go through again",
                    sent_ago,
                );
                open.insert(
                    topic.to_owned(),
                    Episode {
                        since: now.checked_sub(sent_ago).unwrap_or(now),
                        failed: count,
                        first_error: error.to_string(),
                        last_said: now,
                    },
                );
                self.any_open.store(true, Ordering::Release);
            }
            Some(episode) => {
                episode.failed += count;
                if now.duration_since(episode.last_said) >= REMINDER_EVERY {
                    episode.last_said = now;
                    tracing::error!(
                        cluster = %self.cluster,
                        topic,
                        %error,
                        "{} record(s) to '{topic}' not delivered in the last {:.0?} so far",
                        episode.failed,
                        now.duration_since(episode.since),
                    );
                }
            }
        }
    }

    /// A record to `topic` was delivered: closes its episode, if one is open, with one line.
    pub fn delivered(&self, topic: &str) {
        if !self.any_open.load(Ordering::Acquire) {
            return;
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(episode) = open.remove(topic) {
            tracing::warn!(
                cluster = %self.cluster,
                topic,
                "deliveries to '{topic}' go through again after {:.1?}: {} record(s) were not \
                 delivered meanwhile (first error: {})",
                episode.since.elapsed(),
                episode.failed,
                episode.first_error,
            );
        }
        if open.is_empty() {
            self.any_open.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_is_counted_and_closed_by_the_next_delivery_to_its_topic() {
        let log = Undelivered::new("k:9092");
        log.delivered("out"); // nothing open: nothing to do
        log.failed("out", 1, &"timed out", Duration::from_secs(3));
        log.failed("out", 2, &"timed out", Duration::from_secs(3));
        log.failed("other", 1, &"unknown topic", Duration::ZERO);
        assert_eq!(log.total(), 4);
        assert_eq!(log.open.lock().unwrap()["out"].failed, 3);
        assert!(
            log.open.lock().unwrap()["out"].since.elapsed() >= Duration::from_secs(3),
            "the episode began when its first failed record was sent"
        );
        log.delivered("out");
        assert!(!log.open.lock().unwrap().contains_key("out"));
        assert!(
            log.any_open.load(Ordering::Acquire),
            "'other' is still failing"
        );
        log.delivered("other");
        assert!(!log.any_open.load(Ordering::Acquire));
        assert_eq!(log.total(), 4, "the total stays for the stop's summary");
    }
}
