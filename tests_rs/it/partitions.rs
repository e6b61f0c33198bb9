//! Rebalance hooks and seeks as a Rust app uses them: a hook told of partitions assigned can
//! seek before any record of them is handled; revoked partitions are reported after their
//! offsets were committed; `RunningApp::seek` replays a partition while the app runs.

use std::sync::{Arc, Mutex};

use fastkafka::app::{App, Json, TestHarness};
use fastkafka::consumer_loop::PartitionsChanged;
use fastkafka::transport::PartitionsChange;
use fastkafka::{ClusterId, MemoryBroker, TopicPartition};

use super::app_examples::forwarding::common::{brokers, TestMsg};
use super::WAIT;

/// What the app saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Message(String),
    Changed(PartitionsChange),
}

type SeenList = Arc<Mutex<Vec<Seen>>>;

/// An app whose consumer of `signals` (group `g`) records each message and each change of its
/// partitions in one list, and whose hook seeks every assigned partition to `seek_to`.
fn recording_app(seen: &SeenList, seek_to: Option<i64>) -> App {
    let mut app = App::new(brokers("server_1:9092"));
    let (handled, told) = (seen.clone(), seen.clone());
    app.consumer("signals", None, Json, move |msg: TestMsg| {
        handled.lock().unwrap().push(Seen::Message(msg.msg));
        async { Ok::<_, String>(()) }
    })
    .unwrap()
    .group_id("g")
    .on_partitions_changed(move |changed: PartitionsChanged| {
        let told = told.clone();
        async move {
            if let (PartitionsChange::Assigned(partitions), Some(offset)) =
                (&changed.change, seek_to)
            {
                for partition in partitions {
                    changed.seeker.seek(partition.clone(), offset)?;
                }
            }
            told.lock().unwrap().push(Seen::Changed(changed.change));
            Ok(())
        }
    });
    app
}

async fn until_seen(seen: &SeenList, count: usize) -> Vec<Seen> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = seen.lock().unwrap().clone();
        if now.len() >= count {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "saw only {now:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_hook_seeks_assigned_partitions_before_any_record_of_them_is_handled() {
    let seen = SeenList::default();
    let app = recording_app(&seen, Some(3));
    let harness = TestHarness::new(&app, MemoryBroker::new());
    for i in 0..5 {
        harness
            .send("signals", None, &Json, &TestMsg::new(&i.to_string()))
            .unwrap();
    }
    let running = app.start(harness.transport()).await.unwrap();
    let seen = until_seen(&seen, 3).await;
    assert_eq!(
        seen,
        [
            Seen::Changed(PartitionsChange::Assigned(vec![TopicPartition::new(
                "signals", 0
            )])),
            Seen::Message("3".to_owned()),
            Seen::Message("4".to_owned())
        ],
        "the hook first, then the records from offset 3 on"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn revoked_partitions_are_reported_after_their_offsets_were_committed() {
    let broker = MemoryBroker::new();
    let cluster = ClusterId::from_addresses(["server_1:9092"]);
    broker.create_topic(&cluster, "signals", 2).unwrap();
    let first_seen = SeenList::default();
    let first = recording_app(&first_seen, None);
    let harness = TestHarness::new(&first, broker.clone());
    for i in 0..4 {
        harness
            .send("signals", None, &Json, &TestMsg::new(&i.to_string()))
            .unwrap();
    }
    let running = first.start(harness.transport()).await.unwrap();
    until_seen(&first_seen, 5).await; // assigned both, then the four records

    // A second member takes one partition away from the first.
    let second_seen = SeenList::default();
    let second = recording_app(&second_seen, None);
    let joined = second.start(harness.transport()).await.unwrap();
    let told = until_seen(&first_seen, 6).await;
    let Some(Seen::Changed(PartitionsChange::Revoked(revoked))) = told.last() else {
        panic!("the first member was told last that a partition went: {told:?}");
    };
    assert_eq!(revoked.len(), 1, "{told:?}");
    let memory = broker.memory_cluster(&cluster);
    let committed = memory.committed_offset("g", &revoked[0]);
    assert!(
        committed.is_some_and(|offset| offset > 0),
        "what the first member handled of it was committed: {committed:?}"
    );
    joined.stop().await.unwrap();
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_running_app_replays_a_partition_when_asked_to_seek() {
    let seen = SeenList::default();
    let app = recording_app(&seen, None);
    let harness = TestHarness::new(&app, MemoryBroker::new());
    for i in 0..3 {
        harness
            .send("signals", None, &Json, &TestMsg::new(&i.to_string()))
            .unwrap();
    }
    let running = app.start(harness.transport()).await.unwrap();
    until_seen(&seen, 4).await;
    let consumer = "consumer of 'signals'";
    running.seek(consumer, 0, 1).unwrap();
    let replayed = until_seen(&seen, 6).await;
    assert_eq!(
        replayed[4..],
        [Seen::Message("1".into()), Seen::Message("2".into())],
        "offsets 1 and 2 again: {replayed:?}"
    );
    let unknown = running.seek("on_nothing", 0, 0).unwrap_err().to_string();
    assert!(
        unknown.contains(consumer),
        "names the known ones: {unknown}"
    );
    running.stop().await.unwrap();
}
