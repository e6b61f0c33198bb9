//! At-least-once across clusters: an input's offset is committed only once what its handler
//! produced — to another cluster — is delivered; a failed delivery makes the batch be handled
//! again, never skipped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fastkafka::app::{App, Json, TestHarness, Watch};
use fastkafka::{KafkaBrokers, MemoryBroker, TopicPartition};
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

/// An in-memory broker, `app`'s test harness on it, and a watch on `predictions` on `two`.
async fn watching_predictions(
    app: &App,
    two: &KafkaBrokers,
) -> (MemoryBroker, TestHarness, Watch<TestMsg>) {
    let broker = MemoryBroker::new();
    let harness = TestHarness::new(app, broker.clone());
    let predictions = harness
        .watch::<TestMsg, _>("predictions", Some(two), Json)
        .await
        .unwrap();
    (broker, harness, predictions)
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
    let (broker, harness, mut predictions) = watching_predictions(&app, &two).await;
    let cluster_two = app.cluster_id(Some(&two)).unwrap();
    broker.refuse_deliveries(&cluster_two, Some("cluster 2 is down"));
    let running = app.start(harness.transport()).await.unwrap();
    harness
        .send("signals", None, &Json, &TestMsg::new("x"))
        .unwrap();

    // Handled, not delivered, handled again: and meanwhile nothing is committed.
    until(&changed, || handled.load(Ordering::SeqCst) >= 2).await;
    let signals = broker.memory_cluster(&app.cluster_id(None).unwrap());
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

/// Polls `condition` every 2 ms (the in-process broker notifies nobody of commits) until it
/// holds or `within` is over; returns whether it held.
async fn holds_within(within: Duration, condition: impl Fn() -> bool) -> bool {
    tokio::time::timeout(within, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_task_a_handler_spawns_holds_its_input_until_what_it_sends_is_delivered() {
    let (one, two) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let mut app = App::new(one.clone());
    let forward = app
        .producer::<TestMsg>("predictions", Some(&two), Json)
        .unwrap();
    let (handled, changed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let release = Arc::new(Notify::new());
    let (count, wake, go) = (handled.clone(), changed.clone(), release.clone());
    app.consumer("signals", None, Json, move |msg: TestMsg| {
        let (forward, count, wake, go) = (forward.clone(), count.clone(), wake.clone(), go.clone());
        async move {
            // Sends after the handler returned, from a task tied to this input.
            fastkafka::delivery::spawn(async move {
                go.notified().await;
                forward.send(&msg).await
            });
            count.fetch_add(1, Ordering::SeqCst);
            wake.notify_waiters();
            Ok::<(), fastkafka::Error>(())
        }
    })
    .unwrap()
    .group_id("g")
    .commit_interval(Some(Duration::from_millis(1)));
    let (broker, harness, mut predictions) = watching_predictions(&app, &two).await;
    let running = app.start(harness.transport()).await.unwrap();
    harness
        .send("signals", None, &Json, &TestMsg::new("x"))
        .unwrap();
    until(&changed, || handled.load(Ordering::SeqCst) == 1).await;

    let signals = broker.memory_cluster(&app.cluster_id(None).unwrap());
    let committed = || signals.committed_offset("g", &TopicPartition::new("signals", 0));
    // The loop commits every millisecond: a stored offset would show at once.
    assert!(
        !holds_within(Duration::from_millis(300), || committed().is_some()).await,
        "the input stays uncommitted while the task it started has not sent"
    );
    release.notify_one();
    assert_eq!(predictions.next().await.unwrap(), TestMsg::new("x"));
    assert!(
        holds_within(WAIT, || committed() == Some(1)).await,
        "committed once the task's send was delivered"
    );
    running.stop().await.unwrap();
}
