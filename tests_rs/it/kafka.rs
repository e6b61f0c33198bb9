//! The librdkafka transport against librdkafka's mock cluster: the same seam, real client code.
//! (Interoperability with a real broker is proven by the Python tests on Tansu.) Apps started on
//! it, checks and a full queue: `kafka_clusters.rs`.

use std::collections::BTreeSet;

use fastkafka::delivery::DeliveryTracker;
use fastkafka::transport::kafka::KafkaTransport;
use fastkafka::{ClientProperties, ClusterId, OutgoingRecord, Subscription, Transport};
use rdkafka::mocking::MockCluster;

use super::{poll_exactly, values};

pub(super) fn fast_properties() -> ClientProperties {
    [("fetch.wait.max.ms", "10"), ("session.timeout.ms", "6000")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub(super) fn setup(
    partitions: i32,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    ClusterId,
    KafkaTransport,
) {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t", partitions, 1).unwrap();
    let id = ClusterId::from_addresses(mock.bootstrap_servers().split(','));
    (mock, id, KafkaTransport::new(fast_properties()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_records_keep_keys_headers_and_order() {
    let (_mock, id, transport) = setup(1);
    let cluster = transport.cluster(&id).unwrap();
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let records = (0..50)
        .map(|i| {
            OutgoingRecord::new(i.to_string())
                .with_key(format!("k{i}"))
                .with_header("h", "v")
        })
        .collect();
    cluster.produce("t", records).unwrap();
    cluster.flush().await.unwrap();
    let got = poll_exactly(consumer.as_mut(), 50).await;
    let expected: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!(values(&got), expected);
    assert_eq!(got[7].key.as_deref(), Some(&b"k7"[..]));
    assert_eq!(got[7].headers, vec![("h".to_owned(), Some("v".into()))]);
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_and_null_header_values_stay_null() {
    // Kafka keeps a null value (a tombstone: "this key was deleted" on a compacted topic)
    // apart from an empty one, and so must every record that passes through us.
    let (_mock, id, transport) = setup(1);
    let cluster = transport.cluster(&id).unwrap();
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let mut tombstone = OutgoingRecord::tombstone("deleted");
    tombstone.headers.push(("reason".to_owned(), None));
    let empty = OutgoingRecord::new("").with_header("reason", "");
    cluster.produce("t", vec![tombstone, empty]).unwrap();
    cluster.flush().await.unwrap();
    let got = poll_exactly(consumer.as_mut(), 2).await;
    assert_eq!(got[0].key.as_deref(), Some(&b"deleted"[..]));
    assert_eq!(got[0].value, None);
    assert_eq!(got[0].headers, vec![("reason".to_owned(), None)]);
    assert_eq!(got[1].value.as_deref(), Some(&b""[..]));
    assert_eq!(got[1].headers, vec![("reason".to_owned(), Some("".into()))]);
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_returns_once_every_record_sent_has_its_delivery_settled() {
    // A stop flushes, then reports the failed deliveries and commits: a flush that returned
    // while delivery reports were still being served would let it miss a failed record.
    let (_mock, id, transport) = setup(2);
    let cluster = transport.cluster(&id).unwrap();
    let tracker = DeliveryTracker::new();
    let records = (0..2_000)
        .map(|i| OutgoingRecord::new(i.to_string()))
        .collect();
    let refused = cluster
        .try_produce_tracked("t", records, Some(&tracker))
        .unwrap();
    assert!(refused.is_empty(), "the client queue took every record");
    cluster.flush().await.unwrap();
    assert_eq!(tracker.pending(), 0, "records unsettled after the flush");
    assert!(tracker.outcome().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_unkeyed_and_empty_records_of_one_batch_keep_their_own_bytes() {
    // A polled batch's keys and payloads share one buffer: each record must still see exactly
    // its own key (or none) and payload (or an empty one).
    let (_mock, id, transport) = setup(1);
    let cluster = transport.cluster(&id).unwrap();
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let sent: Vec<OutgoingRecord> = (0..30)
        .map(|i| {
            let record = OutgoingRecord::new(if i % 5 == 0 {
                String::new()
            } else {
                format!("v{i}")
            });
            if i % 3 == 0 {
                record.with_key(format!("key-{i}"))
            } else {
                record
            }
        })
        .collect();
    cluster.produce("t", sent.clone()).unwrap();
    cluster.flush().await.unwrap();
    let got = poll_exactly(consumer.as_mut(), 30).await;
    for (record, expected) in got.iter().zip(&sent) {
        assert_eq!(record.key, expected.key, "key of offset {}", record.offset);
        assert_eq!(
            record.value, expected.value,
            "value of offset {}",
            record.offset
        );
        assert_eq!(&*record.topic, "t");
    }
    consumer.close().await.unwrap();
}

/// Produces one record whose only header has the key `key` (any bytes) with a plain
/// rust-rdkafka producer: its `Header` type takes `&str` keys, so the C API adds the header.
fn produce_with_raw_header_key(mock_servers: &str, key: &[u8], value: &[u8]) {
    use rdkafka::bindings as ffi;
    use rdkafka::message::OwnedHeaders;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let headers = OwnedHeaders::new();
    // An `&BorrowedHeaders` is rust-rdkafka's view of the native headers pointer itself.
    let native = headers.as_borrowed() as *const rdkafka::message::BorrowedHeaders
        as *mut ffi::rd_kafka_headers_t;
    // SAFETY: `native` is the live header list `headers` owns; librdkafka copies both buffers.
    let added = unsafe {
        ffi::rd_kafka_header_add(
            native,
            key.as_ptr().cast(),
            key.len() as isize,
            value.as_ptr().cast(),
            value.len() as isize,
        )
    };
    assert_eq!(added, ffi::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock_servers)
        .create()
        .unwrap();
    producer
        .send(BaseRecord::<(), _>::to("t").payload("odd").headers(headers))
        .map_err(|(error, _)| error)
        .unwrap();
    producer.flush(std::time::Duration::from_secs(10)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_key_that_is_not_utf8_is_read_not_fatal() {
    let (mock, id, transport) = setup(1);
    produce_with_raw_header_key(&mock.bootstrap_servers(), b"trace-\xff\xfe", b"\x00\x01");
    let cluster = transport.cluster(&id).unwrap();
    cluster
        .produce("t", vec![OutgoingRecord::new("after")])
        .unwrap();
    cluster.flush().await.unwrap();
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let got = poll_exactly(consumer.as_mut(), 2).await;
    assert_eq!(values(&got), ["odd", "after"]);
    assert_eq!(
        got[0].headers,
        vec![(
            "trace-\u{fffd}\u{fffd}".to_owned(),
            Some((&b"\x00\x01"[..]).into())
        )]
    );
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_resumes_after_its_last_commit() {
    let (_mock, id, transport) = setup(2);
    let cluster = transport.cluster(&id).unwrap();
    cluster
        .produce(
            "t",
            (0..20)
                .map(|i| OutgoingRecord::new(i.to_string()))
                .collect(),
        )
        .unwrap();
    cluster.flush().await.unwrap();
    let group = Subscription::new(["t"]).with_group("g");

    let mut first = cluster.subscribe(group.clone()).await.unwrap();
    let got = poll_exactly(first.as_mut(), 20).await;
    let (done, unfinished) = got.split_at(12);
    first.store_offsets(done).unwrap();
    first.close().await.unwrap();

    let mut second = cluster.subscribe(group).await.unwrap();
    let resumed = poll_exactly(second.as_mut(), unfinished.len()).await;
    let as_set = |records: &[fastkafka::Record]| -> BTreeSet<(i32, i64)> {
        records.iter().map(|r| (r.partition, r.offset)).collect()
    };
    assert_eq!(
        as_set(&resumed),
        as_set(unfinished),
        "exactly the unfinished records again"
    );
    assert_eq!(second.assignment().len(), 2);
    second.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_to_one_cluster_share_one_client_with_one_configuration() {
    let (_mock, id, transport) = setup(1);
    let linger: ClientProperties = [("linger.ms".to_owned(), "5".to_owned())].into();
    let a = transport.cluster_with(&id, &linger).unwrap();
    let b = transport.cluster_with(&id, &linger).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    let other: ClientProperties = [("linger.ms".to_owned(), "50".to_owned())].into();
    let error = transport.cluster_with(&id, &other).unwrap_err();
    assert!(
        error.to_string().contains("disagree on 'linger.ms'"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_that_would_break_delivery_guarantees_are_refused() {
    let reserved: ClientProperties = [("enable.auto.commit".to_owned(), "true".to_owned())].into();
    let error = KafkaTransport::new(reserved).unwrap_err();
    assert!(error
        .to_string()
        .contains("'enable.auto.commit' is managed by fastkafka"));
    let (_mock, id, transport) = setup(1);
    let cluster = transport.cluster(&id).unwrap();
    let bad = Subscription::new(["t"]).with_property("no.such.property", "1");
    let error = cluster.subscribe(bad).await.unwrap_err();
    assert!(error.to_string().contains("no.such.property"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_zstd_are_built_in() {
    let (_mock, id, transport) = setup(1);
    let properties: ClientProperties = [("security.protocol", "ssl"), ("compression.type", "zstd")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    transport.cluster_with(&id, &properties).unwrap();
}

/// The guide's forwarding example on two real clusters (Tansu), through librdkafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarding_example_crosses_two_real_clusters() {
    use super::app_examples::forwarding;
    use super::tansu::Tansu;

    let (one, two) = (Tansu::start("cluster_1"), Tansu::start("cluster_2"));
    for cluster in [&one, &two] {
        cluster.create_topic("preprocessed_signals", 1);
    }
    let (brokers_1, brokers_2) = (
        forwarding::common::brokers(&one.address()),
        forwarding::common::brokers(&two.address()),
    );
    let app = forwarding::forwarding_app(&brokers_1, &brokers_2).unwrap();
    let transport: std::sync::Arc<dyn Transport> =
        std::sync::Arc::new(KafkaTransport::new(fast_properties()).unwrap());
    let cluster_2 = transport
        .cluster(&app.cluster_id(Some(&brokers_2)).unwrap())
        .unwrap();
    let mut on_two = cluster_2
        .subscribe(Subscription::new(["preprocessed_signals"]))
        .await
        .unwrap();
    let running = app.start(transport.clone()).await.unwrap();
    let cluster_1 = transport.cluster(&app.cluster_id(None).unwrap()).unwrap();
    cluster_1
        .produce(
            "preprocessed_signals",
            vec![OutgoingRecord::new(r#"{"msg":"across"}"#)],
        )
        .unwrap();
    let forwarded = poll_exactly(on_two.as_mut(), 1).await;
    assert_eq!(values(&forwarded), [r#"{"msg":"across"}"#]);
    running.stop().await.unwrap();
    on_two.close().await.unwrap();
}

/// A loopback port nothing listens on (bound and released).
pub(super) fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `kafka_brokers` whose `localhost` environment is the mock cluster `id`.
pub(super) fn localhost_brokers(id: &ClusterId) -> fastkafka::KafkaBrokers {
    serde_json::from_value(serde_json::json!({
        "localhost": id.bootstrap_servers().split(',').map(|address| {
            let (url, port) = address.rsplit_once(':').unwrap();
            serde_json::json!({"url": url, "port": port})
        }).collect::<Vec<_>>(),
    }))
    .unwrap()
}
