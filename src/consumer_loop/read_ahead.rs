//! [`ReadAhead`]: the next batch, polled while the handler works on the current one.
//!
//! Polling a batch is the loop's own work (librdkafka's queue, then converting each message):
//! ~1.5 ms for 2,000 records in `make bench`. Done after the handler returns, it is time the
//! handler's thread — Python's event loop — spends idle between batches; done while the
//! handler runs, it costs nothing on that thread. At most one batch is read ahead, and only
//! while a handler runs, so nothing is polled faster than it is handled.
//!
//! Read-ahead records are not yet handed to anyone: a stop drops them (their offsets were
//! never stored, so the next run reads them again) and a partition paused for a retry
//! forgets them ([`ReadAhead::forget`]), to read them again from its rewound offset.

use std::future::Future;

use crate::error::Result;
use crate::record::{Record, TopicPartition};
use crate::transport::ClusterConsumer;

/// At most one batch polled ahead of the one being handled.
#[derive(Debug, Default)]
pub(super) struct ReadAhead {
    next: Option<Result<Vec<Record>>>,
}

impl ReadAhead {
    /// Runs `handling` to its end and meanwhile, unless a batch is already read ahead, polls
    /// `consumer` once for up to `size` records. A poll still waiting for records when the
    /// handling ends is dropped, which loses nothing (`poll` is cancel-safe).
    pub(super) async fn while_handling<F: Future>(
        &mut self,
        consumer: &mut dyn ClusterConsumer,
        size: usize,
        handling: F,
    ) -> F::Output {
        if self.next.is_some() {
            return handling.await;
        }
        tokio::pin!(handling);
        tokio::select! {
            // Biased: a handler that is done is never kept waiting for a poll.
            biased;
            output = &mut handling => return output,
            polled = consumer.poll(size) => self.next = Some(polled),
        }
        handling.await
    }

    /// The batch read ahead, if any (its poll's error, if that failed).
    pub(super) fn take(&mut self) -> Option<Result<Vec<Record>>> {
        self.next.take()
    }

    /// Drops what was read ahead of `partition`: it is paused and rewound, and reads those
    /// records again once resumed.
    pub(super) fn forget(&mut self, partition: &TopicPartition) {
        if let Some(Ok(records)) = &mut self.next {
            records.retain(|record| {
                *record.topic != *partition.topic || record.partition != partition.partition
            });
            if records.is_empty() {
                self.next = None;
            }
        }
    }
}
