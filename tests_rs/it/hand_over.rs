//! How many records a poll hands over: a fast handler that takes one message at a time gets
//! larger hand-overs than `max_poll_records` (fewer thread wake-ups for Python), bounded by
//! the cap; a handler that sees its batches never does.

use async_trait::async_trait;
use fastkafka::{
    BatchHandler, ConsumerLoop, ConsumerLoopConfig, MemoryBroker, OutgoingRecord, Record, Transport,
};
use tokio::sync::mpsc;

use super::{cluster_id, WAIT};

const RECORDS: usize = 5000;

/// Reports each hand-over's size.
struct Sizes(mpsc::UnboundedSender<usize>);

#[async_trait]
impl BatchHandler for Sizes {
    async fn handle(&mut self, records: &[Record]) -> fastkafka::Result<fastkafka::Handled> {
        self.0.send(records.len()).unwrap();
        Ok(fastkafka::Handled::all())
    }
}

/// The sizes of the hand-overs that deliver [`RECORDS`] waiting records.
async fn hand_over_sizes(max_poll_records_when_fast: Option<usize>) -> Vec<usize> {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let records = (0..RECORDS).map(|i| OutgoingRecord::new(i.to_string()));
    cluster.produce("t", records.collect()).unwrap();
    let consumer = super::member_of_g(&cluster).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = ConsumerLoopConfig {
        max_poll_records: 10,
        max_poll_records_when_fast,
        ..Default::default()
    };
    let running = ConsumerLoop::spawn(consumer, Sizes(tx), config);
    let mut sizes = Vec::new();
    while sizes.iter().sum::<usize>() < RECORDS {
        let size = tokio::time::timeout(WAIT, rx.recv()).await.unwrap();
        sizes.push(size.unwrap());
    }
    running.stop().await.unwrap();
    sizes
}

#[tokio::test]
async fn a_fast_one_message_handler_gets_larger_hand_overs_up_to_the_cap() {
    let sizes = hand_over_sizes(Some(1000)).await;
    assert_eq!(
        sizes[0], 10,
        "the first poll knows nothing of the handler's speed"
    );
    assert!(sizes.iter().all(|size| *size <= 1000), "{sizes:?}");
    assert!(sizes.contains(&1000), "grown to the cap: {sizes:?}");
}

#[tokio::test]
async fn without_a_cap_every_hand_over_is_at_most_max_poll_records() {
    let sizes = hand_over_sizes(None).await;
    assert!(sizes.iter().all(|size| *size <= 10), "{sizes:?}");
}

/// A Rust app's per-message handler does not see its calls' size either: with records
/// waiting, its calls grow past `max_poll_records` (fewer handled batches awaiting their
/// outputs at once, which let a distant cluster cap the app's rate).
#[tokio::test]
async fn a_rust_per_message_consumer_is_sized_to_its_handler() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use fastkafka::app::{App, Json};

    let brokers: fastkafka::KafkaBrokers =
        serde_json::from_value(serde_json::json!({"localhost": {"url": "sized", "port": 9092}}))
            .unwrap();
    let mut app = App::new(brokers);
    let handled = Arc::new(AtomicUsize::new(0));
    let counted = handled.clone();
    app.consumer("sized_by_handler", None, Json, move |_: u32| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Ok::<(), String>(()) }
    })
    .unwrap()
    .max_poll_records(10);
    let broker = MemoryBroker::new();
    let waiting = (0..RECORDS).map(|i| OutgoingRecord::new(i.to_string()));
    (broker.cluster(&app.cluster_id(None).unwrap()).unwrap())
        .produce("sized_by_handler", waiting.collect())
        .unwrap();
    let running = app.start(Arc::new(broker)).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while handled.load(Ordering::Relaxed) < RECORDS {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every waiting record handled");
    let metrics = fastkafka::metrics::render();
    let batches: f64 = metrics
        .lines()
        .find(|line| {
            line.starts_with("fastkafka_consumer_batches_total")
                && line.contains("topic=\"sized_by_handler\"")
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .expect("the consumer's batches are counted");
    running.stop().await.unwrap();
    assert!(
        batches < (RECORDS / 10) as f64,
        "{batches} calls for {RECORDS} records: none larger than max_poll_records"
    );
}
