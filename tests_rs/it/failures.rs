//! What a consumer does with records it cannot process: a retryable failure is retried in
//! place (its partition pauses, the others go on, order is kept), and what cannot be processed
//! goes to the dead-letter topic — with headers saying where it came from and why — before the
//! input commits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fastkafka::app::{App, Json, Metadata, TestHarness};
use fastkafka::consumer_loop::failures::headers;
use fastkafka::{Cluster, MemoryBroker, OutgoingRecord, Record, RetryPolicy, TopicPartition};
use tokio::sync::Notify;

use super::app_examples::forwarding::common::{brokers, TestMsg};
use super::WAIT;

/// What a handler saw: (partition, text) of each success, attempts per text.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) handled: Vec<(i32, String)>,
    pub(super) attempts: HashMap<String, u32>,
}

/// What a handler will see, and the signal it fires after each message.
pub(super) fn watched() -> (Arc<Mutex<Seen>>, Arc<Notify>) {
    (
        Arc::new(Mutex::new(Seen::default())),
        Arc::new(Notify::new()),
    )
}

/// Waits (up to [`WAIT`]) until `condition` holds on `seen`, woken by `changed`.
pub(super) async fn until(seen: &Mutex<Seen>, changed: &Notify, condition: impl Fn(&Seen) -> bool) {
    tokio::time::timeout(WAIT, async {
        loop {
            let notified = changed.notified();
            if condition(&seen.lock().unwrap()) {
                return;
            }
            notified.await;
        }
    })
    .await
    .expect("the condition held in time");
}

/// Waits (up to [`WAIT`]) until `topic` on the cluster of `brokers` holds `count` records.
async fn records_on(
    harness: &TestHarness,
    topic: &str,
    brokers: Option<&fastkafka::KafkaBrokers>,
    count: usize,
) -> Vec<Record> {
    tokio::time::timeout(WAIT, async {
        loop {
            let records = harness.records(topic, brokers).unwrap();
            if records.len() >= count {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(2)).await; // in-process broker: look again
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} record(s) on '{topic}' in time"))
}

fn header(record: &Record, name: &str) -> String {
    let (_, value) = record
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .unwrap_or_else(|| panic!("header {name} on {record:?}"));
    String::from_utf8(value.as_deref().unwrap_or_default().to_vec()).unwrap()
}

/// One key per partition of a `partitions`-partition topic on `cluster` (found by probing).
fn key_per_partition(cluster: &fastkafka::MemoryCluster, partitions: i32) -> Vec<Bytes> {
    cluster.create_topic("probe", partitions as usize).unwrap();
    (0..partitions)
        .map(|partition| {
            (0..)
                .map(|k: u32| Bytes::from(format!("key{k}")))
                .find(|key| {
                    cluster
                        .produce(
                            "probe",
                            vec![OutgoingRecord::new("x").with_key(key.clone())],
                        )
                        .unwrap();
                    cluster.records("probe").last().unwrap().partition == partition
                })
                .unwrap()
        })
        .collect()
}

pub(super) fn json(text: &str) -> OutgoingRecord {
    OutgoingRecord::new(serde_json::to_vec(&TestMsg::new(text)).unwrap())
}

#[tokio::test]
async fn a_failing_record_is_retried_in_place_while_other_partitions_go_on() {
    let one = brokers("server_1:9092");
    let mut app = App::new(one.clone());
    let (seen, changed) = watched();
    let (record, wake) = (seen.clone(), changed.clone());
    app.consumer_with_metadata(
        "signals",
        None,
        Json,
        move |msg: TestMsg, meta: Metadata| {
            let (seen, wake) = (record.clone(), wake.clone());
            async move {
                let outcome = {
                    let mut seen = seen.lock().unwrap();
                    let attempt = seen.attempts.entry(msg.msg.clone()).or_default();
                    *attempt += 1;
                    if msg.msg == "a0" && *attempt <= 2 {
                        Err(format!("a0 fails on attempt {attempt}"))
                    } else {
                        seen.handled.push((meta.partition, msg.msg));
                        Ok(())
                    }
                };
                wake.notify_waiters();
                outcome
            }
        },
    )
    .unwrap()
    .group_id("g")
    .retry(RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(400),
        max_backoff: Duration::from_millis(400),
    });
    let broker = MemoryBroker::new();
    let cluster = broker.memory_cluster(&app.cluster_id(None).unwrap());
    cluster.create_topic("signals", 2).unwrap();
    let harness = TestHarness::new(&app, broker.clone());
    let keys = key_per_partition(&cluster, 2);
    let send = |partition: usize, text: &str| {
        cluster
            .produce(
                "signals",
                vec![json(text).with_key(keys[partition].clone())],
            )
            .unwrap();
    };
    for text in ["a0", "a1", "a2"] {
        send(0, text);
    }
    send(1, "b0");
    let running = app.start(harness.transport()).await.unwrap();

    // a0 failed once; its partition waits while the other one goes on.
    until(&seen, &changed, |s| s.handled.contains(&(1, "b0".into()))).await;
    send(1, "b1");
    until(&seen, &changed, |s| s.handled.contains(&(1, "b1".into()))).await;
    {
        let seen = seen.lock().unwrap();
        assert!(
            !seen.handled.iter().any(|(p, _)| *p == 0),
            "nothing after a0 in its partition is handled before it: {:?}",
            seen.handled
        );
    }

    until(&seen, &changed, |s| s.handled.len() == 5).await;
    running.stop().await.unwrap();
    let seen = seen.lock().unwrap();
    let partition = |p: i32| -> Vec<&str> {
        seen.handled
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, text)| text.as_str())
            .collect()
    };
    assert_eq!(
        partition(0),
        ["a0", "a1", "a2"],
        "order kept, each handled once"
    );
    assert_eq!(partition(1), ["b0", "b1"]);
    assert_eq!(seen.attempts["a0"], 3);
    assert!(
        seen.attempts.iter().all(|(t, n)| t == "a0" || *n == 1),
        "{:?}",
        seen.attempts
    );
    assert_eq!(
        cluster.committed_offset("g", &TopicPartition::new("signals", 0)),
        Some(3)
    );
}

#[tokio::test]
async fn what_cannot_be_processed_is_dead_lettered_with_why_and_then_committed() {
    let (one, two) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let mut app = App::new(one.clone());
    let (seen, changed) = watched();
    let (record, wake) = (seen.clone(), changed.clone());
    app.consumer("signals", None, Json, move |msg: TestMsg| {
        let (seen, wake) = (record.clone(), wake.clone());
        async move {
            let mut seen_now = seen.lock().unwrap();
            *seen_now.attempts.entry(msg.msg.clone()).or_default() += 1;
            let outcome = if msg.msg == "boom" {
                Err("boom never works")
            } else {
                seen_now.handled.push((0, msg.msg));
                Ok(())
            };
            drop(seen_now);
            wake.notify_waiters();
            outcome
        }
    })
    .unwrap()
    .group_id("g")
    .retry(RetryPolicy {
        attempts: 2,
        backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    })
    // On the other cluster: the dead letters' producer is bound there.
    .dead_letter_on("signals_dlt", &two);
    let broker = MemoryBroker::new();
    let signals = broker.memory_cluster(&app.cluster_id(None).unwrap());
    let harness = TestHarness::new(&app, broker.clone());
    signals
        .produce(
            "signals",
            vec![
                OutgoingRecord::new("not json")
                    .with_key("k")
                    .with_header("origin", "test"),
                json("boom"),
                json("fine"),
            ],
        )
        .unwrap();
    let running = app.start(harness.transport()).await.unwrap();

    let letters = tokio::time::timeout(WAIT, async {
        loop {
            let letters = harness.dead_letters("consumer of 'signals'").unwrap();
            if letters.len() >= 2 {
                return letters;
            }
            tokio::time::sleep(Duration::from_millis(2)).await; // in-process broker: look again
        }
    })
    .await
    .expect("two dead letters in time");
    until(&seen, &changed, |s| s.handled.len() == 1).await;
    running.stop().await.unwrap();

    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(
        harness.records("signals_dlt", Some(&two)).unwrap().len(),
        2,
        "on the dead-letter cluster"
    );
    let (undecodable, failed) = (&letters[0], &letters[1]);
    assert_eq!(undecodable.value.as_deref(), Some(&b"not json"[..]));
    assert_eq!(undecodable.key.as_deref(), Some(&b"k"[..]));
    assert!(
        undecodable
            .headers
            .contains(&("origin".to_owned(), Some("test".into()))),
        "its own headers are kept"
    );
    assert_eq!(
        (
            undecodable.topic.as_str(),
            undecodable.partition,
            undecodable.offset
        ),
        ("signals", 0, 0)
    );
    assert_eq!(undecodable.consumer, "consumer of 'signals'");
    assert_eq!(undecodable.error_type, "Undecodable");
    assert_eq!(undecodable.attempts, 1, "never retried");
    assert_eq!(failed.offset, 1);
    assert_eq!(failed.error_type, "HandlerError");
    assert_eq!(failed.error_message, "boom never works");
    assert_eq!(failed.attempts, 2);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.attempts["boom"], 2, "retried as the policy says");
    assert_eq!(seen.handled, [(0, "fine".to_owned())]);
    assert_eq!(
        signals.committed_offset("g", &TopicPartition::new("signals", 0)),
        Some(3),
        "everything committed once dead-lettered"
    );
}

#[tokio::test]
async fn a_batch_whose_outputs_cannot_be_delivered_is_dead_lettered_not_lost() {
    let (one, two) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let mut app = App::new(one.clone());
    let forward = app
        .producer::<TestMsg>("predictions", Some(&two), Json)
        .unwrap();
    app.consumer("signals", None, Json, move |msg: TestMsg| {
        let forward = forward.clone();
        async move { forward.send(&msg).await }
    })
    .unwrap()
    .group_id("g")
    .dead_letter("signals_dlt");
    let broker = MemoryBroker::new();
    let signals = broker.memory_cluster(&app.cluster_id(None).unwrap());
    broker.refuse_deliveries(
        &app.cluster_id(Some(&two)).unwrap(),
        Some("cluster 2 is down"),
    );
    let harness = TestHarness::new(&app, broker.clone());
    harness
        .send("signals", None, &Json, &TestMsg::new("x"))
        .unwrap();
    let running = app.start(harness.transport()).await.unwrap();

    let letters = records_on(&harness, "signals_dlt", None, 1).await;
    running.stop().await.unwrap();
    assert_eq!(header(&letters[0], headers::ERROR_TYPE), "DeliveryFailed");
    assert!(
        header(&letters[0], headers::ERROR_MESSAGE).contains("cluster 2 is down"),
        "{letters:?}"
    );
    assert_eq!(
        signals.committed_offset("g", &TopicPartition::new("signals", 0)),
        Some(1)
    );
}

#[tokio::test]
async fn undeliverable_outputs_hold_back_only_their_own_partition() {
    let (one, two, three) = (
        brokers("server_1:9092"),
        brokers("server_2:9092"),
        brokers("server_3:9092"),
    );
    let mut app = App::new(one.clone());
    let to_two = app.producer::<TestMsg>("out", Some(&two), Json).unwrap();
    let to_three = app.producer::<TestMsg>("out", Some(&three), Json).unwrap();
    let (seen, changed) = watched();
    let (record, wake) = (seen.clone(), changed.clone());
    app.consumer_with_metadata(
        "signals",
        None,
        Json,
        move |msg: TestMsg, meta: Metadata| {
            let (to_two, to_three) = (to_two.clone(), to_three.clone());
            let (seen, wake) = (record.clone(), wake.clone());
            async move {
                // Partition 0's outputs go to cluster 2, partition 1's to cluster 3.
                match meta.partition {
                    0 => to_two.send(&msg).await?,
                    _ => to_three.send(&msg).await?,
                }
                seen.lock().unwrap().handled.push((meta.partition, msg.msg));
                wake.notify_waiters();
                Ok::<(), fastkafka::Error>(())
            }
        },
    )
    .unwrap()
    .group_id("g")
    .commit_interval(Some(Duration::from_millis(1)));
    let broker = MemoryBroker::new();
    let signals = broker.memory_cluster(&app.cluster_id(None).unwrap());
    signals.create_topic("signals", 2).unwrap();
    let harness = TestHarness::new(&app, broker.clone());
    let cluster_two = app.cluster_id(Some(&two)).unwrap();
    broker.refuse_deliveries(&cluster_two, Some("cluster 2 is down"));
    let keys = key_per_partition(&signals, 2);
    for (partition, text) in [(0, "a0"), (1, "b0"), (1, "b1")] {
        signals
            .produce(
                "signals",
                vec![json(text).with_key(keys[partition].clone())],
            )
            .unwrap();
    }
    let running = app.start(harness.transport()).await.unwrap();
    let committed =
        |partition: i32| signals.committed_offset("g", &TopicPartition::new("signals", partition));

    // a0 is read and handled again while its output is refused; b0 and b1 commit meanwhile.
    until(&seen, &changed, |s| {
        s.handled.iter().filter(|(p, _)| *p == 0).count() >= 3
            && s.handled.contains(&(1, "b1".into()))
    })
    .await;
    tokio::time::timeout(WAIT, async {
        while committed(1) != Some(2) {
            changed.notified().await;
        }
    })
    .await
    .ok();
    assert_eq!(committed(1), Some(2), "the other partition went on");
    assert_eq!(
        committed(0),
        None,
        "nothing committed past the undelivered output"
    );
    broker.refuse_deliveries(&cluster_two, None);
    let delivered = records_on(&harness, "out", Some(&two), 1).await;
    running.stop().await.unwrap();
    assert_eq!(delivered[0].value.as_deref(), Some(&br#"{"msg":"a0"}"#[..]));
    assert_eq!(committed(0), Some(1));
    let seen = seen.lock().unwrap();
    let others = seen.handled.iter().filter(|(p, _)| *p == 1).count();
    assert!(
        others <= 4,
        "the other partition is handled again at most once (it shared a0's first batch): {others}"
    );
}

#[tokio::test]
async fn a_tombstone_is_none_to_an_optional_handler_and_a_tombstone_in_a_dead_letter() {
    let one = brokers("server_1:9092");
    let mut app = App::new(one.clone());
    let (seen, changed) = watched();
    let (record, wake) = (seen.clone(), changed.clone());
    app.consumer("accounts", None, Json, move |msg: Option<TestMsg>| {
        let text = msg.map_or("deleted".to_owned(), |msg| msg.msg);
        record.lock().unwrap().handled.push((0, text));
        wake.notify_waiters();
        async { Ok::<_, String>(()) }
    })
    .unwrap();
    app.consumer("signals", None, Json, |_: TestMsg| async {
        Ok::<_, String>(())
    })
    .unwrap()
    .dead_letter_on("signals_dlt", &one);
    let broker = MemoryBroker::new();
    let cluster = broker.memory_cluster(&app.cluster_id(None).unwrap());
    let harness = TestHarness::new(&app, broker.clone());
    let mut tombstone = OutgoingRecord::tombstone("k");
    tombstone.headers.push(("reason".to_owned(), None));
    cluster
        .produce("accounts", vec![json("a"), tombstone.clone()])
        .unwrap();
    cluster.produce("signals", vec![tombstone]).unwrap();
    let running = app.start(harness.transport()).await.unwrap();

    let letters = records_on(&harness, "signals_dlt", Some(&one), 1).await;
    until(&seen, &changed, |s| s.handled.len() == 2).await;
    running.stop().await.unwrap();
    let handled: Vec<_> = seen.lock().unwrap().handled.clone();
    assert_eq!(handled, [(0, "a".to_owned()), (0, "deleted".to_owned())]);
    assert_eq!(letters[0].value, None, "still a tombstone");
    assert_eq!(letters[0].headers[0], ("reason".to_owned(), None));
    assert_eq!(header(&letters[0], headers::ERROR_TYPE), "Undecodable");
}
