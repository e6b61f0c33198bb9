//! Handing a polled batch to its handler and dealing with what it reports: one partition per
//! call when asked (each call with its own delivery tracker), a warning for a slow batch, and
//! each failure retried in place, dead-lettered or skipped as the consumer's
//! [`FailurePolicy`](super::failures::FailurePolicy) says — the handler is called again with
//! the records it did not reach, minus those of partitions rewound for a retry, which are
//! paused until their backoff is over.

use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::awaiting::AwaitingDelivery;
use super::dead_letters::give_up;
use super::failures::{redelivery_backoff, Attempts, Failure, FailureKind, Handled, Rewind};
use super::state::LoopState;
use super::{BatchHandler, ConsumerLoopConfig};
use crate::delivery::DeliveryTracker;
use crate::error::Result;
use crate::metrics::BatchCounts;
use crate::record::Record;
use crate::transport::ClientProperties;

/// When to report a slow batch for a consumer with these client properties: at 80% of its
/// `max.poll.interval.ms` (librdkafka's default: 300 000 ms), so the log says which consumer
/// and batch before the group evicts it.
pub fn slow_batch_warning(properties: &ClientProperties) -> Option<Duration> {
    Some(crate::health::max_poll_interval(properties) * 4 / 5)
}

impl LoopState {
    /// Hands each of `calls` to the handler with a delivery tracker of its own, pauses what is
    /// to be retried, and queues what was done to be stored once its outputs are delivered.
    pub(super) async fn handle_calls<H: BatchHandler>(
        &mut self,
        handler: &mut H,
        calls: Vec<Vec<Record>>,
        config: &ConsumerLoopConfig,
    ) -> Result<()> {
        for records in calls {
            let tracker = DeliveryTracker::new();
            let started = Instant::now();
            let count = records.len();
            let handling = crate::delivery::tracking(
                tracker.clone(),
                handle_polled(handler, records, config, &mut self.attempts),
            );
            let outcome = self
                .read_ahead
                .while_handling(self.consumer.as_mut(), self.poll_size.next(), handling)
                .await?;
            let elapsed = started.elapsed();
            self.poll_size.observe(count, elapsed);
            if let Some(metrics) = &config.metrics {
                metrics.record_batch(outcome.counts, elapsed);
            }
            self.pause_for_retry(outcome.rewinds)?;
            if !outcome.done.is_empty() {
                self.awaiting.push_back(AwaitingDelivery {
                    batch: outcome.done,
                    tracker,
                    dead_lettered: false,
                });
            }
        }
        Ok(())
    }
}

/// What handling a polled batch came to: the records whose offsets may be stored once what
/// was produced for them is delivered, and the partitions to rewind for a retry.
#[derive(Debug, Default)]
pub(super) struct BatchOutcome {
    pub(super) done: Vec<Record>,
    pub(super) rewinds: Vec<Rewind>,
    pub(super) counts: BatchCounts,
}

/// Handles `batch` (one partition per call if the config says so), deals with each failure
/// as the policy says, and returns what is done and what to retry. An `Err` stops the loop.
pub(super) async fn handle_polled<H: BatchHandler>(
    handler: &mut H,
    batch: Vec<Record>,
    config: &ConsumerLoopConfig,
    attempts: &mut Attempts,
) -> Result<BatchOutcome> {
    let mut rewinds: Vec<Rewind> = Vec::new();
    let mut counts = BatchCounts {
        consumed: batch.len() as u64,
        ..BatchCounts::default()
    };
    if config.one_partition_per_call {
        for partition in by_partition(&batch) {
            handle_call(
                handler,
                &partition,
                config,
                attempts,
                &mut rewinds,
                &mut counts,
            )
            .await?;
        }
    } else {
        handle_call(handler, &batch, config, attempts, &mut rewinds, &mut counts).await?;
    }
    // The batch is moved, not copied, unless a partition was rewound (the common case).
    let done: Vec<Record> = if rewinds.is_empty() {
        batch
    } else {
        batch
            .into_iter()
            .filter(|record| !is_rewound(&rewinds, record))
            .collect()
    };
    // Nothing to look up unless a record is being retried (the common case).
    let retried = if attempts.is_empty() {
        &[][..]
    } else {
        &done[..]
    };
    for record in retried {
        if let Some(failed) = attempts.processed(record) {
            tracing::info!(
                "{}: topic={} partition={} offset={} went through after {failed} failed \
                 attempt(s)",
                config.name,
                record.topic,
                record.partition,
                record.offset,
            );
        }
    }
    // Done also covers what was dead-lettered or skipped; handled is what the handler did.
    counts.handled = (done.len() as u64).saturating_sub(counts.dead_lettered + counts.skipped);
    Ok(BatchOutcome {
        done,
        rewinds,
        counts,
    })
}

/// Whether `record` is at or after the offset its partition is rewound to.
pub(super) fn is_rewound(rewinds: &[Rewind], record: &Record) -> bool {
    rewinds.iter().any(|rewind| {
        *rewind.partition.topic == *record.topic
            && rewind.partition.partition == record.partition
            && record.offset >= rewind.offset
    })
}

/// One handler call and its follow-ups: after a stop at a retryable failure, the handler is
/// called again with the records it did not reach, minus those of rewound partitions (copied
/// only then).
async fn handle_call<H: BatchHandler>(
    handler: &mut H,
    records: &[Record],
    config: &ConsumerLoopConfig,
    attempts: &mut Attempts,
    rewinds: &mut Vec<Rewind>,
    counts: &mut BatchCounts,
) -> Result<()> {
    let Some(next) = handle_once(handler, records, config, attempts, rewinds, counts).await? else {
        return Ok(());
    };
    let mut remaining = not_rewound(&records[next..], rewinds);
    while !remaining.is_empty() {
        match handle_once(handler, &remaining, config, attempts, rewinds, counts).await? {
            None => break,
            Some(next) => remaining = not_rewound(&remaining[next..], rewinds),
        }
    }
    Ok(())
}

fn not_rewound(records: &[Record], rewinds: &[Rewind]) -> Vec<Record> {
    records
        .iter()
        .filter(|record| !is_rewound(rewinds, record))
        .cloned()
        .collect()
}

/// One handler call over `records`, each failure dealt with; returns where to go on from if
/// the handler stopped before the end.
async fn handle_once<H: BatchHandler>(
    handler: &mut H,
    records: &[Record],
    config: &ConsumerLoopConfig,
    attempts: &mut Attempts,
    rewinds: &mut Vec<Rewind>,
    counts: &mut BatchCounts,
) -> Result<Option<usize>> {
    let mut handled = handle_watched(handler, records, config).await?;
    if crate::delivery::current().is_some_and(|tracker| tracker.has_failed()) {
        // A send made for this call failed (or was refused): once its tracker settles, the
        // call's records are read and handled again, or dead-lettered, as undeliverable
        // outputs are. What the handler reported, and the records it did not reach, are moot.
        return Ok(None);
    }
    // In record order, whatever order they were reported in (a concurrent handler reports them
    // as they complete): the first failing record of a partition is the one it rewinds to, and
    // the later ones are read again after it without counting an attempt.
    handled
        .failures
        .sort_by_key(|failure| failure.indices.first().copied());
    for failure in &handled.failures {
        let failed: Vec<&Record> = failure
            .indices
            .iter()
            .filter_map(|&index| records.get(index))
            .collect();
        let Some(&first) = failed.first() else {
            continue;
        };
        // A refused output is never skipped: it is retried in place until it goes, or until a
        // dead-letter topic takes its input after the policy's attempts (one without a policy).
        let undelivered = failure.kind == FailureKind::Undelivered;
        let retried = undelivered || (failure.retryable && config.failures.retry.is_some());
        if is_rewound(rewinds, first) {
            // A concurrent handler's later record of a partition already rewound: it is read
            // and handled again after the earlier one, but this run was one of its attempts.
            if retried {
                attempts.failed(first);
            }
            continue;
        }
        counts.failed += failed.len() as u64;
        let attempt = if retried {
            let attempt = attempts.failed(first);
            let policy = config.failures.retry;
            let limit = if undelivered {
                let dead_letter_after = policy.map_or(1, |policy| policy.attempts);
                config
                    .failures
                    .dead_letter
                    .as_ref()
                    .map(|_| dead_letter_after)
            } else {
                policy.map(|policy| policy.attempts)
            };
            if limit.is_none_or(|limit| attempt < limit) {
                let backoff = match (undelivered, policy) {
                    (false, Some(policy)) => policy.backoff_before(attempt + 1),
                    _ => redelivery_backoff(attempt),
                };
                log_retry(config, first, failure, attempt, limit, backoff);
                rewinds.push(Rewind {
                    partition: first.topic_partition(),
                    offset: first.offset,
                    backoff,
                });
                counts.retried += 1;
                continue;
            }
            attempts.processed(first);
            attempt
        } else {
            1
        };
        give_up(config, &failed, failure, attempt).await?;
        match config.failures.dead_letter {
            Some(_) => counts.dead_lettered += failed.len() as u64,
            None => counts.skipped += failed.len() as u64,
        }
    }
    Ok(handled
        .stopped_after
        .map(|after| after + 1)
        .filter(|next| *next < records.len()))
}

fn log_retry(
    config: &ConsumerLoopConfig,
    record: &Record,
    failure: &Failure,
    attempt: u32,
    of: Option<u32>,
    backoff: Duration,
) {
    let what = match failure.kind {
        FailureKind::Undelivered => "its output was refused",
        _ => "handler failed",
    };
    let of = of.map_or_else(String::new, |of| format!(" of {of}"));
    let line = format_args!(
        "{}: {what} on attempt {attempt}{of} (topic={} partition={} offset={}): {}: {}; the \
         partition pauses and the record is handled again in {backoff:?}",
        config.name,
        record.topic,
        record.partition,
        record.offset,
        failure.error_type,
        failure.message,
    );
    // An output refused until it goes through can take many attempts: the first and every
    // tenth are warnings, the others debug lines.
    if failure.kind != FailureKind::Undelivered || attempt % 10 == 1 {
        tracing::warn!(target: "fastkafka::consumer", "{line}");
    } else {
        tracing::debug!(target: "fastkafka::consumer", "{line}");
    }
}

/// Hands `batch` to `handler`, and warns once if it takes longer than the configured limit.
async fn handle_watched<H: BatchHandler>(
    handler: &mut H,
    batch: &[Record],
    config: &ConsumerLoopConfig,
) -> Result<Handled> {
    let span = crate::spans::handle_batch(&config.name, batch);
    let Some(limit) = config.slow_batch_warning else {
        return handler.handle(batch).instrument(span).await;
    };
    let handling = handler.handle(batch).instrument(span);
    tokio::pin!(handling);
    tokio::select! {
        handled = &mut handling => return handled,
        () = tokio::time::sleep(limit) => {}
    }
    let first = &batch[0];
    tracing::warn!(
        "{}: still handling a batch of {} record(s) (first topic={} partition={} offset={}) \
         after {:.1} s; a group evicts a member that does not poll within \
         max.poll.interval.ms and gives its partitions to another",
        config.name,
        batch.len(),
        first.topic,
        first.partition,
        first.offset,
        limit.as_secs_f64()
    );
    handling.await
}

/// The records of each partition, in order; partitions in the order they first appear.
pub(super) fn by_partition(records: &[Record]) -> Vec<Vec<Record>> {
    let mut partitions: Vec<Vec<Record>> = Vec::new();
    for record in records {
        let same = partitions
            .iter_mut()
            .find(|group| group[0].topic == record.topic && group[0].partition == record.partition);
        match same {
            Some(group) => group.push(record.clone()),
            None => partitions.push(vec![record.clone()]),
        }
    }
    partitions
}
