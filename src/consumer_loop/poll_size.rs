//! [`PollSize`]: how many records the consumer loop asks for per poll — `max_poll_records`, or,
//! for a handler that takes one message at a time (to whom the batch size is invisible), as many
//! as it handles in [`HAND_OVER_TARGET`]: each hand-over to Python costs two thread wake-ups, so
//! fast handlers get fewer, larger ones, and slow handlers keep batches far from
//! `max.poll.interval.ms`.

use std::time::Duration;

use super::ConsumerLoopConfig;

/// About how long handling one hand-over should take when the loop may size it
/// ([`ConsumerLoopConfig::max_poll_records_when_fast`]).
pub const HAND_OVER_TARGET: Duration = Duration::from_millis(20);

/// How many records the next poll asks for: `max_poll_records`, or — when the handler takes one
/// message at a time — as many as it handles in [`HAND_OVER_TARGET`], within bounds.
#[derive(Debug)]
pub(super) struct PollSize {
    floor: usize,
    cap: Option<usize>,
    next: usize,
}

impl PollSize {
    pub(super) fn new(config: &ConsumerLoopConfig) -> Self {
        Self {
            floor: config.max_poll_records,
            cap: config.max_poll_records_when_fast,
            next: config.max_poll_records,
        }
    }

    pub(super) fn next(&self) -> usize {
        self.next
    }

    /// `records` took `elapsed` to handle (hand-over included).
    pub(super) fn observe(&mut self, records: usize, elapsed: Duration) {
        let Some(cap) = self.cap else {
            return;
        };
        let per_record = elapsed.as_nanos() / records.max(1) as u128;
        let fits = HAND_OVER_TARGET.as_nanos() / per_record.max(1);
        self.next = usize::try_from(fits)
            .unwrap_or(usize::MAX)
            .clamp(self.floor, cap.max(self.floor));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(floor: usize, cap: Option<usize>) -> PollSize {
        PollSize::new(&ConsumerLoopConfig {
            max_poll_records: floor,
            max_poll_records_when_fast: cap,
            ..ConsumerLoopConfig::default()
        })
    }

    #[test]
    fn a_fast_handler_gets_what_it_handles_in_the_target_time_within_bounds() {
        let mut size = sized(100, Some(2000));
        size.observe(100, Duration::from_millis(2)); // 20 us a record: 1000 in 20 ms
        assert_eq!(size.next(), 1000);
        size.observe(1000, Duration::from_micros(100)); // faster than the cap allows
        assert_eq!(size.next(), 2000);
        size.observe(2000, Duration::from_secs(2)); // 1 ms a record: back to the floor
        assert_eq!(size.next(), 100);
    }

    #[test]
    fn without_a_cap_the_size_is_always_max_poll_records() {
        let mut size = sized(100, None);
        size.observe(100, Duration::from_micros(10));
        assert_eq!(size.next(), 100);
    }
}
