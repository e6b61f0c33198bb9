//! The Rust-native app: the guide's three examples (from `examples/`) tested in memory, and the
//! guarantees a Rust user relies on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fastkafka::app::{App, Json, Metadata, TestHarness};
use fastkafka::{Error, MemoryBroker, TopicPartition, Transport};

use super::app_examples::{aggregation, fan_out, forwarding};

type Batches = Arc<Mutex<Vec<(Vec<TestMsg>, Vec<Metadata>)>>>;

use forwarding::common::{brokers, TestMsg};

const NOTHING_MORE: Duration = Duration::from_millis(100);

#[tokio::test]
async fn forwarding_moves_signals_from_cluster_1_to_cluster_2_only() {
    let (one, two) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let app = forwarding::forwarding_app(&one, &two).unwrap();
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let mut on_two = harness
        .watch::<TestMsg, _>("preprocessed_signals", Some(&two), Json)
        .await
        .unwrap();
    let mut on_one = harness
        .watch::<TestMsg, _>("preprocessed_signals", None, Json)
        .await
        .unwrap();
    let running = app.start(harness.transport()).await.unwrap();
    harness
        .send("preprocessed_signals", None, &Json, &TestMsg::new("x"))
        .unwrap();
    assert_eq!(on_two.next().await.unwrap(), TestMsg::new("x"));
    assert_eq!(
        on_one.next().await.unwrap(),
        TestMsg::new("x"),
        "the original"
    );
    assert!(
        on_one.next_within(NOTHING_MORE).await.is_err(),
        "nothing echoed back"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn aggregation_collects_both_clusters_on_cluster_1() {
    let (one, two) = (
        aggregation::common::brokers("server_1:9092"),
        aggregation::common::brokers("server_2:9092"),
    );
    let app = aggregation::aggregation_app(&one, &two).unwrap();
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let mut on_one = harness
        .watch::<aggregation::common::TestMsg, _>("predictions", None, Json)
        .await
        .unwrap();
    let mut on_two = harness
        .watch::<aggregation::common::TestMsg, _>("predictions", Some(&two), Json)
        .await
        .unwrap();
    let running = app.start(harness.transport()).await.unwrap();
    let (a, b) = (
        aggregation::common::TestMsg::new("a"),
        aggregation::common::TestMsg::new("b"),
    );
    harness
        .send("preprocessed_signals", None, &Json, &a)
        .unwrap();
    harness
        .send("preprocessed_signals", Some(&two), &Json, &b)
        .unwrap();
    let mut got = vec![
        on_one.next().await.unwrap().msg,
        on_one.next().await.unwrap().msg,
    ];
    got.sort();
    assert_eq!(got, ["a", "b"]);
    assert!(on_two.next_within(NOTHING_MORE).await.is_err());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn fan_out_predicts_on_both_clusters() {
    let (one, two) = (
        fan_out::common::brokers("server_1:9092"),
        fan_out::common::brokers("server_2:9092"),
    );
    let app = fan_out::fan_out_app(&one, &two).unwrap();
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let mut on_one = harness
        .watch::<fan_out::common::TestMsg, _>("predictions", None, Json)
        .await
        .unwrap();
    let mut on_two = harness
        .watch::<fan_out::common::TestMsg, _>("predictions", Some(&two), Json)
        .await
        .unwrap();
    let running = app.start(harness.transport()).await.unwrap();
    harness
        .send(
            "preprocessed_signals",
            None,
            &Json,
            &fan_out::common::TestMsg::new("s"),
        )
        .unwrap();
    assert_eq!(on_one.next().await.unwrap().msg, "prediction");
    assert_eq!(on_two.next().await.unwrap().msg, "prediction");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_records_are_skipped_keys_reach_metadata_and_offsets_are_committed() {
    let one = brokers("server_1:9092");
    let mut app = App::new(one.clone());
    let seen: Arc<Mutex<Vec<(String, Metadata)>>> = Arc::default();
    let sink = seen.clone();
    app.consumer_with_metadata(
        "signals",
        None,
        Json,
        move |msg: TestMsg, meta: Metadata| {
            let sink = sink.clone();
            async move {
                if msg.msg == "fail" {
                    return Err("handler refused");
                }
                sink.lock().unwrap().push((msg.msg, meta));
                Ok(())
            }
        },
    )
    .unwrap()
    .group_id("g");
    let producer = app.producer::<TestMsg>("signals", None, Json).unwrap();
    let broker = MemoryBroker::new();
    let harness = TestHarness::new(&app, broker.clone());
    let running = app.start(harness.transport()).await.unwrap();
    harness
        .send(
            "signals",
            None,
            &fastkafka::app::Json,
            &"not an object".to_owned(),
        )
        .unwrap();
    producer.send(&TestMsg::new("fail")).await.unwrap();
    producer
        .send_keyed("k1", &TestMsg::new("ok"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while seen.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the good record is handled");
    running.stop().await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "ok");
    assert_eq!(seen[0].1.key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(seen[0].1.offset, 2);
    let committed = broker
        .memory_cluster(&app.cluster_id(None).unwrap())
        .committed_offset("g", &TopicPartition::new("signals", 0));
    assert_eq!(
        committed,
        Some(3),
        "bad and failed records are not retried forever"
    );
    assert!(matches!(
        producer.send(&TestMsg::new("late")).await,
        Err(Error::Closed(_))
    ));
}

#[tokio::test]
async fn a_batch_consumer_gets_vectors_with_aligned_metadata() {
    let mut app = App::new(brokers("server_1:9092"));
    let batches: Batches = Arc::default();
    let sink = batches.clone();
    app.batch_consumer(
        "signals",
        None,
        Json,
        move |msgs: Vec<TestMsg>, metas: Vec<Metadata>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((msgs, metas));
                Ok::<(), Error>(())
            }
        },
    )
    .unwrap()
    .max_poll_records(10);
    let producer = app.producer::<TestMsg>("signals", None, Json).unwrap();
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let running = app.start(harness.transport()).await.unwrap();
    let all: Vec<TestMsg> = (0..25).map(|i| TestMsg::new(&i.to_string())).collect();
    producer.send_records(None, Vec::new(), &all).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while batches
            .lock()
            .unwrap()
            .iter()
            .map(|(m, _)| m.len())
            .sum::<usize>()
            < 25
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every message arrives");
    running.stop().await.unwrap();
    let batches = batches.lock().unwrap();
    assert!(batches
        .iter()
        .all(|(m, meta)| m.len() <= 10 && m.len() == meta.len()));
    let offsets: Vec<i64> = batches
        .iter()
        .flat_map(|(_, meta)| meta.iter().map(|m| m.offset))
        .collect();
    assert_eq!(offsets, (0..25).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_batch_consumer_gets_one_partition_per_call_as_in_python() {
    let mut app = App::new(brokers("server_1:9092"));
    let batches: Batches = Arc::default();
    let sink = batches.clone();
    app.batch_consumer(
        "signals",
        None,
        Json,
        move |msgs: Vec<TestMsg>, metas: Vec<Metadata>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((msgs, metas));
                Ok::<(), Error>(())
            }
        },
    )
    .unwrap();
    let broker = MemoryBroker::new();
    let id = app.cluster_id(None).unwrap();
    broker.create_topic(&id, "signals", 2).unwrap();
    // Keys spread the records over both partitions; all are there before the first poll, so
    // the consumer polls them as one batch.
    let records = (0..20)
        .map(|i| {
            let json = serde_json::to_vec(&TestMsg::new(&i.to_string())).unwrap();
            fastkafka::OutgoingRecord::new(json).with_key(format!("key-{i}"))
        })
        .collect();
    broker
        .cluster(&id)
        .unwrap()
        .produce("signals", records)
        .unwrap();
    let harness = TestHarness::new(&app, broker);
    let running = app.start(harness.transport()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while batches
            .lock()
            .unwrap()
            .iter()
            .map(|(m, _)| m.len())
            .sum::<usize>()
            < 20
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every message arrives");
    running.stop().await.unwrap();
    let batches = batches.lock().unwrap();
    let partitions: Vec<i32> = batches.iter().map(|(_, meta)| meta[0].partition).collect();
    assert!(
        batches
            .iter()
            .all(|(_, meta)| meta.iter().all(|m| m.partition == meta[0].partition)),
        "each call holds one partition: {partitions:?}"
    );
    assert_eq!(
        partitions.len(),
        2,
        "one call per partition: {partitions:?}"
    );
}

#[test]
fn overrides_must_define_the_apps_environments() {
    let mut app =
        App::new(serde_json::from_str(r#"{"dev": {"url": "a"}, "prod": {"url": "b"}}"#).unwrap());
    let partial: fastkafka::KafkaBrokers =
        serde_json::from_str(r#"{"dev": {"url": "c"}}"#).unwrap();
    let error = app
        .producer::<TestMsg>("t", Some(&partial), Json)
        .unwrap_err();
    assert!(error
        .to_string()
        .starts_with("To override application default brokers"));
    assert!(App::new(partial).environment("staging").is_err());
}

#[tokio::test]
async fn concurrency_runs_a_batch_at_once_within_its_limit() {
    let mut app = App::new(brokers("server_1:9092"));
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (counter, high, gate) = (in_flight.clone(), peak.clone(), release.clone());
    let done = app.producer::<TestMsg>("done", None, Json).unwrap();
    app.consumer("jobs", None, Json, move |msg: TestMsg| {
        let (counter, high, gate, done) =
            (counter.clone(), high.clone(), gate.clone(), done.clone());
        async move {
            use std::sync::atomic::Ordering::SeqCst;
            high.fetch_max(counter.fetch_add(1, SeqCst) + 1, SeqCst);
            gate.acquire().await.expect("open").forget();
            counter.fetch_sub(1, SeqCst);
            done.send(&msg).await
        }
    })
    .unwrap()
    .concurrency(3);
    let jobs = app.producer::<TestMsg>("jobs", None, Json).unwrap();
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let mut finished = harness
        .watch::<TestMsg, _>("done", None, Json)
        .await
        .unwrap();
    let running = app.start(harness.transport()).await.unwrap();
    let all: Vec<TestMsg> = (0..6).map(|i| TestMsg::new(&i.to_string())).collect();
    jobs.send_records(None, Vec::new(), &all).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while in_flight.load(std::sync::atomic::Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("three handlers run at once");
    release.add_permits(6);
    for _ in 0..6 {
        finished.next().await.unwrap();
    }
    running.stop().await.unwrap();
    assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn background_tasks_start_with_the_app_and_stop_with_it() {
    let mut app = App::new(brokers("server_1:9092"));
    let ticks = app.producer::<TestMsg>("ticks", None, Json).unwrap();
    app.background(move || {
        let ticks = ticks.clone();
        async move {
            ticks
                .send(&TestMsg::new("tick"))
                .await
                .expect("the app is running");
            std::future::pending::<()>().await;
        }
    });
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let mut seen = harness
        .watch::<TestMsg, _>("ticks", None, Json)
        .await
        .unwrap();
    let running = app.start(harness.transport()).await.unwrap();
    assert_eq!(seen.next().await.unwrap().msg, "tick");
    tokio::time::timeout(Duration::from_secs(5), running.stop())
        .await
        .expect("stop does not wait for the pending task")
        .unwrap();
}

#[test]
fn cluster_configuration_reads_from_toml_and_names_the_bad_key() {
    let brokers: fastkafka::KafkaBrokers = toml::from_str(
        r#"
        [development]
        url = "dev.server_1"
        port = 9092

        [[production]]
        url = "prod.a"
        port = "9093"
        [[production]]
        url = "prod.b"
        "#,
    )
    .unwrap();
    assert_eq!(
        brokers.resolve("production").unwrap().bootstrap_servers(),
        "prod.a:9093,prod.b:9092"
    );
    let error = toml::from_str::<fastkafka::KafkaBrokers>("[development]\nport = 1\n").unwrap_err();
    assert!(error
        .to_string()
        .contains("kafka_brokers['development'] is missing the required key 'url'"));
}

#[tokio::test]
async fn a_handler_that_panics_fails_the_app_instead_of_leaving_a_dead_consumer() {
    let mut app = App::new(brokers("server_1:9092"));
    app.consumer("signals", None, Json, |signal: TestMsg| async move {
        if signal == TestMsg::new("poison") {
            panic!("cannot handle poison");
        }
        Ok::<(), Error>(())
    })
    .unwrap();
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let running = app.start(harness.transport()).await.unwrap();
    harness
        .send("signals", None, &Json, &TestMsg::new("poison"))
        .unwrap();
    let failure = tokio::time::timeout(Duration::from_secs(5), running.wait_for_failure())
        .await
        .expect("the app reports the dead consumer");
    assert!(
        matches!(&failure, Error::ConsumerEnded { source, .. } if matches!(**source, Error::Panicked { .. })),
        "a panic, as the source of the consumer's end: {failure:?}"
    );
    assert_eq!(
        std::error::Error::source(&failure).map(ToString::to_string),
        Some("consumer loop panicked: cannot handle poison".to_owned())
    );
    assert_eq!(
        failure.to_string(),
        "consumer of 'signals' ended: consumer loop panicked: cannot handle poison"
    );
    assert!(running.stop().await.is_err(), "stop reports it too");
}

#[tokio::test]
async fn run_until_returns_when_a_consumer_dies() {
    let mut app = App::new(brokers("server_1:9092"));
    app.consumer("signals", None, Json, |_: TestMsg| async move {
        panic!("always");
        #[allow(unreachable_code)]
        Ok::<(), Error>(())
    })
    .unwrap();
    let harness = TestHarness::new(&app, MemoryBroker::new());
    harness
        .send("signals", None, &Json, &TestMsg::new("x"))
        .unwrap();
    let ran = tokio::time::timeout(
        Duration::from_secs(5),
        app.run_until(harness.transport(), std::future::pending::<()>()),
    )
    .await
    .expect("run_until ends instead of running on with a dead consumer");
    let failure = ran.expect_err("the dead consumer is the app's error");
    assert!(matches!(failure, Error::ConsumerEnded { .. }));
    assert!(failure.to_string().contains("always"), "{failure}");
}
