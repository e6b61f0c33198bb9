//! The window of handled records awaiting their outputs' acknowledgements: bounded in records,
//! whatever the size of the handler's calls, and in their payload bytes. A loop polls on until
//! the window is full, then waits for the oldest batch; once the acknowledgements come,
//! everything is handled and committed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fastkafka::delivery::DeliveryTracker;
use fastkafka::{
    BatchHandler, Cluster, ConsumerLoop, ConsumerLoopConfig, Handled, MemoryBroker, OutgoingRecord,
    Record, TopicPartition, Transport,
};
use tokio::sync::Notify;

use super::{cluster_id, WAIT};

const RECORDS: usize = 1000;

/// Records and payload bytes awaiting acknowledgements.
#[derive(Debug, Default, Clone, Copy)]
struct Amount {
    records: usize,
    bytes: usize,
}

/// What the handler saw: the acknowledgements it holds back, and the most awaiting theirs at
/// any of its calls.
#[derive(Default)]
struct Seen {
    held: Vec<Arc<DeliveryTracker>>,
    awaiting: Amount,
    most_awaiting_at_a_call: Amount,
    handled: usize,
    acknowledging: bool,
}

/// "Sends" one output per record: its acknowledgement is held until the test lets them go.
struct HoldsAcknowledgements {
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
}

#[async_trait]
impl BatchHandler for HoldsAcknowledgements {
    async fn handle(&mut self, records: &[Record]) -> fastkafka::Result<Handled> {
        let tracker = fastkafka::delivery::current().expect("a handler call is tracked");
        tracker.sent(records.len());
        let mut seen = self.seen.lock().unwrap();
        let awaiting = seen.awaiting;
        let most = &mut seen.most_awaiting_at_a_call;
        most.records = most.records.max(awaiting.records);
        most.bytes = most.bytes.max(awaiting.bytes);
        seen.handled += records.len();
        if seen.acknowledging {
            records.iter().for_each(|_| tracker.delivered());
        } else {
            seen.awaiting.records += records.len();
            let bytes = records
                .iter()
                .map(|r| r.value.as_ref().map_or(0, |v| v.len()));
            seen.awaiting.bytes += bytes.sum::<usize>();
            seen.held.push(tracker);
        }
        self.changed.notify_waiters();
        Ok(Handled::all())
    }
}

async fn until(changed: &Notify, what: &str, condition: impl Fn() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            let notified = changed.notified();
            if condition() {
                return;
            }
            notified.await;
        }
    });
    waited.await.unwrap_or_else(|_| panic!("never: {what}"));
}

/// Runs a loop of calls of ten records of `value_len` bytes under `window` while the outputs'
/// acknowledgements are held, until it stops for the window; then lets them go and checks that
/// every record is handled and committed. Returns the most awaiting at any call.
async fn fill_the_window(window: Amount, value_len: usize) -> Amount {
    let broker = MemoryBroker::new();
    let id = cluster_id("a");
    broker.create_topic(&id, "t", 1).unwrap();
    let cluster = broker.memory_cluster(&id);
    let records = (0..RECORDS).map(|_| OutgoingRecord::new(vec![b'x'; value_len]));
    cluster.produce("t", records.collect()).unwrap();
    let consumer = super::member_of_g(&broker.cluster(&id).unwrap()).await;
    let (seen, changed) = (
        Arc::new(Mutex::new(Seen::default())),
        Arc::new(Notify::new()),
    );
    let handler = HoldsAcknowledgements {
        seen: seen.clone(),
        changed: changed.clone(),
    };
    let config = ConsumerLoopConfig {
        max_poll_records: 10,
        max_records_awaiting_delivery: window.records,
        max_bytes_awaiting_delivery: window.bytes,
        commit_interval: Some(Duration::from_millis(1)),
        ..Default::default()
    };
    let running = ConsumerLoop::spawn(consumer, handler, config);
    let awaiting = || seen.lock().unwrap().awaiting;

    // It fills the window (one call past it: the window is checked after each call)...
    until(&changed, "a full window", || {
        let awaiting = awaiting();
        awaiting.records > window.records || awaiting.bytes > window.bytes
    })
    .await;
    let committed = || cluster.committed_offset("g", &TopicPartition::new("t", 0));
    assert_eq!(committed(), None, "nothing acknowledged, nothing committed");

    // ...and once the acknowledgements come, handles and commits everything.
    let held = {
        let mut seen = seen.lock().unwrap();
        seen.acknowledging = true;
        seen.awaiting = Amount::default();
        std::mem::take(&mut seen.held)
    };
    for tracker in held {
        (0..tracker.pending()).for_each(|_| tracker.delivered());
    }
    until(&changed, "every record handled", || {
        seen.lock().unwrap().handled == RECORDS
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(committed(), Some(RECORDS as i64));
    let seen = seen.lock().unwrap();
    seen.most_awaiting_at_a_call
}

#[tokio::test]
async fn the_window_counts_records_not_calls() {
    // Calls of ten records: a window counted in calls would let 200 calls await.
    let window = Amount {
        records: 200,
        bytes: usize::MAX,
    };
    let most = fill_the_window(window, 8).await;
    assert!(
        most.records <= window.records,
        "{most:?} awaiting at a call: never more than the window"
    );
}

#[tokio::test]
async fn large_records_fill_the_window_by_their_bytes() {
    let window = Amount {
        records: 100_000,
        bytes: 20_000,
    };
    let most = fill_the_window(window, 1_000).await;
    assert!(
        most.bytes <= window.bytes,
        "{most:?} awaiting at a call: never more bytes than the window"
    );
}
