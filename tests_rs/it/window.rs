//! The window of handled records awaiting their outputs' acknowledgements: counted in records,
//! whatever the size of the handler's calls. A loop polls on until the window is full, then
//! waits for the oldest batch; once the acknowledgements come, everything is handled and
//! committed.

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
const WINDOW: usize = 200;

/// What the handler saw: the acknowledgements it holds back, and the most records awaiting
/// theirs at any of its calls.
#[derive(Default)]
struct Seen {
    held: Vec<Arc<DeliveryTracker>>,
    awaiting: usize,
    most_awaiting_at_a_call: usize,
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
        seen.most_awaiting_at_a_call = seen.most_awaiting_at_a_call.max(seen.awaiting);
        seen.handled += records.len();
        if seen.acknowledging {
            records.iter().for_each(|_| tracker.delivered());
        } else {
            seen.awaiting += records.len();
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

#[tokio::test]
async fn the_window_counts_records_not_calls() {
    let broker = MemoryBroker::new();
    let id = cluster_id("a");
    broker.create_topic(&id, "t", 1).unwrap();
    let cluster = broker.memory_cluster(&id);
    let records = (0..RECORDS).map(|i| OutgoingRecord::new(i.to_string()));
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
    // Calls of ten records: a window counted in calls would let WINDOW calls await.
    let config = ConsumerLoopConfig {
        max_poll_records: 10,
        max_records_awaiting_delivery: WINDOW,
        commit_interval: Some(Duration::from_millis(1)),
        ..Default::default()
    };
    let running = ConsumerLoop::spawn(consumer, handler, config);
    let awaiting = || seen.lock().unwrap().awaiting;

    // It fills the window (one call past it: the window is checked after each call)...
    until(&changed, "a full window", || awaiting() > WINDOW).await;
    let committed = || cluster.committed_offset("g", &TopicPartition::new("t", 0));
    assert_eq!(committed(), None, "nothing acknowledged, nothing committed");

    // ...and once the acknowledgements come, handles and commits everything.
    let held = {
        let mut seen = seen.lock().unwrap();
        seen.acknowledging = true;
        seen.awaiting = 0;
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
    let most = seen.lock().unwrap().most_awaiting_at_a_call;
    assert!(
        most <= WINDOW,
        "{most} records awaiting at a call: never more than the window"
    );
}
