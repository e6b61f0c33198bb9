//! Dropping a running app stops what it started, as `stop` would — consumers finish their batch
//! in flight, commit and leave; background tasks are cancelled — only in the background, since
//! a drop cannot wait: an app dropped by a panic or an early return leaks no consumer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fastkafka::app::{App, Json, TestHarness};
use fastkafka::{Cluster, MemoryBroker, OutgoingRecord, TopicPartition};
use tokio::sync::{mpsc, Notify};

use super::app_examples::forwarding::common::{brokers, TestMsg};
use super::WAIT;

/// Waits (up to [`WAIT`]) until `condition` holds, looking again when `changed` fires or
/// every few milliseconds (a commit has no notification of its own).
async fn until(changed: &Notify, condition: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !condition() {
            let _ = tokio::time::timeout(Duration::from_millis(5), changed.notified()).await;
        }
    })
    .await
    .expect("the condition held in time");
}

#[tokio::test]
async fn dropping_a_running_app_commits_what_it_handled_and_stops_its_consumers() {
    let one = brokers("server_1:9092");
    let mut app = App::new(one.clone());
    let handled = Arc::new(Mutex::new(Vec::new()));
    let changed = Arc::new(Notify::new());
    let (seen, wake) = (handled.clone(), changed.clone());
    app.consumer("signals", None, Json, move |msg: TestMsg| {
        seen.lock().unwrap().push(msg.msg);
        wake.notify_waiters();
        async { Ok::<_, String>(()) }
    })
    .unwrap()
    .group_id("g")
    .commit_interval(None); // commits only when partitions go and at stop
    let broker = MemoryBroker::new();
    let cluster = broker.memory_cluster(&app.cluster_id(None).unwrap());
    let harness = TestHarness::new(&app, broker.clone());
    let running = app.start(harness.transport()).await.unwrap();
    let json = |text: &str| OutgoingRecord::new(serde_json::to_vec(&TestMsg::new(text)).unwrap());
    cluster
        .produce("signals", vec![json("a"), json("b"), json("c")])
        .unwrap();
    until(&changed, || handled.lock().unwrap().len() == 3).await;
    assert_eq!(
        cluster.committed_offset("g", &TopicPartition::new("signals", 0)),
        None
    );

    drop(running);
    // Committed without a commit interval: only a stop commits, so the loop went through its
    // stop — finished, committed and left its group.
    let committed = || cluster.committed_offset("g", &TopicPartition::new("signals", 0));
    until(&changed, || committed() == Some(3)).await;
}

#[tokio::test]
async fn dropping_a_running_app_cancels_its_background_tasks() {
    let mut app = App::new(brokers("server_1:9092"));
    let (alive, mut gone) = mpsc::channel::<()>(1);
    let alive = Arc::new(Mutex::new(Some(alive)));
    app.background(move || {
        let held = alive.lock().unwrap().take();
        async move {
            let _held = held; // dropped when the task ends, closing the channel
            std::future::pending::<()>().await;
        }
    });
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let running = app.start(harness.transport()).await.unwrap();
    drop(running);
    let closed = tokio::time::timeout(WAIT, gone.recv()).await;
    assert_eq!(closed, Ok(None), "the background task ended with the app");
}

#[tokio::test]
async fn a_producer_of_a_dropped_app_refuses_sends_as_after_a_stop() {
    let mut app = App::new(brokers("server_1:9092"));
    let out = app
        .producer::<TestMsg>("out", None, Json)
        .expect("registered");
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let running = app.start(harness.transport()).await.unwrap();
    out.send(&TestMsg::new("while running")).await.unwrap();
    drop(running);
    let refused = out.send(&TestMsg::new("after the drop")).await;
    assert!(
        matches!(refused, Err(fastkafka::Error::Closed(_))),
        "{refused:?}"
    );
    assert_eq!(harness.records("out", None).unwrap().len(), 1);
}
