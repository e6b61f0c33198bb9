//! Apps and clusters on the librdkafka transport, against librdkafka's mock cluster or a port
//! nothing listens on: what a start checks, a cluster that stops answering, a full producer
//! queue awaited, a fenced static member. (The transport's records and groups: `kafka.rs`.)

use fastkafka::transport::kafka::KafkaTransport;
use fastkafka::{ClientProperties, OutgoingRecord, Transport};

use super::kafka::{closed_port, fast_properties, localhost_brokers, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_fails_the_start_naming_it() {
    use fastkafka::app::{App, Json};

    let port = closed_port();
    let brokers: fastkafka::KafkaBrokers = serde_json::from_value(serde_json::json!({
        "development": {"url": "127.0.0.1", "port": port}
    }))
    .unwrap();
    let mut app = App::new(brokers)
        .environment("development")
        .unwrap()
        .start_timeout(std::time::Duration::from_secs(1));
    app.consumer("orders", None, Json, |_: serde_json::Value| async {
        Ok::<(), fastkafka::Error>(())
    })
    .unwrap();
    let transport = std::sync::Arc::new(KafkaTransport::new(fast_properties()).unwrap());
    let error = tokio::time::timeout(std::time::Duration::from_secs(30), app.start(transport))
        .await
        .expect("the start is bounded")
        .expect_err("an unreachable cluster fails the start");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "cluster 127.0.0.1:{port}: unreachable at start (environment 'development', used \
             by consumer of 'orders'): no answer to a metadata request within 1.0 s"
        )),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_stops_answering_fails_the_next_check() {
    // A client's first check may take the answer it got when connecting; a later start of the
    // same app (its clients kept) must ask again, not trust that cached answer.
    let (mock, id, transport) = setup(1);
    let cluster = transport.cluster(&id).unwrap();
    let bound = std::time::Duration::from_secs(5);
    cluster.check_reachable(bound).await.unwrap();
    mock.broker_down(1).unwrap();
    let error = cluster
        .check_reachable(std::time::Duration::from_millis(1500))
        .await
        .expect_err("a cluster whose only broker is down is unreachable");
    assert!(
        error
            .to_string()
            .contains("no answer to a metadata request"),
        "{error}"
    );
    mock.broker_up(1).unwrap();
    cluster.check_reachable(bound).await.unwrap();
}

/// A full producer queue makes a send *await* room: other tasks on the same (single-threaded)
/// runtime keep running meanwhile, which a send that blocked its thread would prevent.
#[tokio::test(flavor = "current_thread")]
async fn a_full_producer_queue_is_awaited_without_blocking_the_runtime() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use fastkafka::runtime::{ClusterChoice, Runtime};

    let (_mock, id, transport) = setup(1);
    let brokers = localhost_brokers(&id);
    let mut runtime = Runtime::new(brokers);
    // One record fills the queue, and lingering keeps it full for a while.
    let properties: ClientProperties = [
        ("queue.buffering.max.messages".to_owned(), "1".to_owned()),
        ("linger.ms".to_owned(), "300".to_owned()),
    ]
    .into();
    let producer = runtime
        .add_producer(
            "to_t",
            "t",
            ClusterChoice::App,
            fastkafka::runtime::ProducerSettings {
                properties,
                ..Default::default()
            },
            fastkafka::runtime::Described::default(),
        )
        .unwrap();
    let running = runtime.start(Arc::new(transport)).await.unwrap();
    producer
        .produce(vec![OutgoingRecord::new(&b"first"[..])])
        .await
        .unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    // Both ways to send: one record (the per-message path), and a batch.
    producer
        .produce_one(OutgoingRecord::new(&b"second"[..]))
        .await
        .unwrap();
    let after_second = ticks.load(Ordering::SeqCst);
    assert!(
        after_second > 0,
        "the runtime went on while the send waited for room"
    );
    producer
        .produce(vec![OutgoingRecord::new(&b"third"[..])])
        .await
        .unwrap();
    ticker.abort();
    assert!(
        ticks.load(Ordering::SeqCst) > after_second,
        "the runtime went on while the batch waited for room"
    );
    running.stop().await.unwrap();
}

/// A consumer fenced by a newer member with its `group.instance.id` can never consume again:
/// the app fails, naming the consumer and the cause, instead of living on with a dead consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_static_member_fails_the_app() {
    use fastkafka::app::{App, Json};
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    let (mock, id, transport) = setup(1);
    let brokers = localhost_brokers(&id);
    let mut app = App::new(brokers);
    app.consumer("t", None, Json, |_: serde_json::Value| async {
        Ok::<(), String>(())
    })
    .unwrap()
    .group_id("g")
    .property("group.instance.id", "member-1")
    .property("heartbeat.interval.ms", "100");
    let running = app.start(std::sync::Arc::new(transport)).await.unwrap();
    mock.request_errors(
        RDKafkaApiKey::Heartbeat,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID; 3],
    );
    let failure = tokio::time::timeout(super::WAIT, running.wait_for_failure())
        .await
        .expect("the fenced consumer fails the app");
    let message = failure.to_string();
    assert!(
        matches!(&failure, fastkafka::Error::ConsumerEnded { source, .. }
            if matches!(**source, fastkafka::Error::Fatal { .. })),
        "{failure:?}"
    );
    assert!(message.contains("consumer of 't'"), "{message}");
    running.stop().await.ok();
}
