//! At-least-once across clusters: an input's offset is committed only once what its handler
//! produced — to another cluster — is delivered; a failed delivery makes the batch be handled
//! again, never skipped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fastkafka::app::{App, Json, TestHarness};
use fastkafka::{MemoryBroker, TopicPartition};
use tokio::sync::Notify;

use super::app_examples::forwarding::common::{brokers, TestMsg};
use super::WAIT;

/// Waits (up to [`WAIT`]) until `condition` holds, woken by `changed`.
async fn until(changed: &Notify, condition: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        loop {
            let notified = changed.notified();
            if condition() {
                return;
            }
            notified.await;
        }
    })
    .await
    .expect("the condition held in time");
}

#[tokio::test]
async fn an_input_commits_only_once_its_output_to_another_cluster_is_delivered() {
    let (one, two) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let mut app = App::new(one.clone());
    let forward = app
        .producer::<TestMsg>("predictions", Some(&two), Json)
        .unwrap();
    let (handled, changed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let (count, wake) = (handled.clone(), changed.clone());
    app.consumer("signals", None, Json, move |msg: TestMsg| {
        let (forward, count, wake) = (forward.clone(), count.clone(), wake.clone());
        async move {
            forward.send(&msg).await?;
            count.fetch_add(1, Ordering::SeqCst);
            wake.notify_waiters();
            Ok::<(), fastkafka::Error>(())
        }
    })
    .unwrap()
    .group_id("g")
    // A stored offset would be committed at once: nothing committed means nothing stored.
    .commit_interval(Some(Duration::from_millis(1)));
    let broker = MemoryBroker::new();
    let harness = TestHarness::new(&app, broker.clone());
    let mut predictions = harness
        .watch::<TestMsg, _>("predictions", Some(&two), Json)
        .await
        .unwrap();
    let cluster_two = app.cluster_of(Some(&two)).unwrap();
    broker.refuse_deliveries(&cluster_two, Some("cluster 2 is down"));
    let running = app.start(harness.transport()).await.unwrap();
    harness
        .send("signals", None, &Json, &TestMsg::new("x"))
        .unwrap();

    // Handled, not delivered, handled again: and meanwhile nothing is committed.
    until(&changed, || handled.load(Ordering::SeqCst) >= 2).await;
    let signals = broker.memory_cluster(&app.cluster_of(None).unwrap());
    let committed = || signals.committed_offset("g", &TopicPartition::new("signals", 0));
    assert_eq!(
        committed(),
        None,
        "nothing is committed while the output is undelivered"
    );

    broker.refuse_deliveries(&cluster_two, None);
    assert_eq!(predictions.next().await.unwrap(), TestMsg::new("x"));
    running.stop().await.unwrap();
    assert_eq!(committed(), Some(1), "committed once delivered");
}
