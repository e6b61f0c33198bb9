//! A Kafka cluster's send lane (`KafkaTransport::with_send_lanes`, what Python apps send
//! through) against librdkafka's mock cluster: it must keep what a direct hand-over to the
//! client gives — order, delivery tracking, backpressure, the refusal of a record too large.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fastkafka::delivery::DeliveryTracker;
use fastkafka::transport::kafka::KafkaTransport;
use fastkafka::{ClientProperties, Cluster, ClusterId, OutgoingRecord, Subscription, Transport};

use super::kafka::{closed_port, setup};
use super::{poll_exactly, values, WAIT};

fn properties(pairs: &[(&str, &str)]) -> ClientProperties {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn laned(id: &ClusterId, properties: ClientProperties) -> Arc<dyn Cluster> {
    KafkaTransport::new(properties)
        .unwrap()
        .with_send_lanes()
        .cluster(id)
        .unwrap()
}

/// Hands `record` to `cluster`, waiting while it hands it back (its lane is full).
async fn send_waiting_for_room(
    cluster: &dyn Cluster,
    mut record: OutgoingRecord,
    tracker: &Arc<DeliveryTracker>,
) {
    let deadline = Instant::now() + WAIT;
    while let Some(back) = cluster.try_produce_one("t", record, Some(tracker)).unwrap() {
        assert!(
            Instant::now() < deadline,
            "no room in the lane for {WAIT:?}"
        );
        record = back;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_hands_records_over_in_the_order_taken_and_a_flush_waits_for_them() {
    let (_mock, id, _) = setup(1);
    // A small client queue, so that the lane is full at times and still holds records when
    // the flush begins.
    let cluster = laned(
        &id,
        properties(&[
            ("fetch.wait.max.ms", "10"),
            ("queue.buffering.max.messages", "100"),
        ]),
    );
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let tracker = DeliveryTracker::new();
    // One at a time and in batches, as Python's `send` and `produce` hand them over.
    for i in 0..3_000 {
        let record = OutgoingRecord::new(i.to_string()).with_key(format!("k{i}"));
        if i % 3 == 0 {
            let record = record.with_header("h", "v");
            let mut rest = vec![record];
            while !rest.is_empty() {
                rest = cluster
                    .try_produce_tracked("t", rest, Some(&tracker))
                    .unwrap();
                tokio::task::yield_now().await;
            }
        } else {
            send_waiting_for_room(&*cluster, record, &tracker).await;
        }
    }
    cluster.flush().await.unwrap();
    assert_eq!(tracker.pending(), 0, "records unsettled after the flush");
    assert!(tracker.outcome().is_ok());
    let got = poll_exactly(consumer.as_mut(), 3_000).await;
    let expected: Vec<String> = (0..3_000).map(|i| i.to_string()).collect();
    assert_eq!(values(&got), expected);
    assert_eq!(got[9].key.as_deref(), Some(&b"k9"[..]));
    assert_eq!(got[9].headers, vec![("h".to_owned(), Some("v".into()))]);
    consumer.close().await.unwrap();
}

/// Records come in bursts (one per batch a handler is handed) and the lane's thread parks
/// between them: each burst must wake it, and be delivered without waiting for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_burst_wakes_a_lane_parked_since_the_last() {
    let (_mock, id, _) = setup(1);
    let cluster = laned(&id, properties(&[("fetch.wait.max.ms", "10")]));
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    for burst in 0..5 {
        let tracker = DeliveryTracker::new();
        for i in 0..20 {
            let record = OutgoingRecord::new(format!("{burst}-{i}"));
            send_waiting_for_room(&*cluster, record, &tracker).await;
        }
        // Acknowledged without a flush or another send: the lane woke for the burst (each
        // acknowledgement takes longer than the lane's one empty turn before it parks).
        tokio::time::timeout(WAIT, tracker.settled())
            .await
            .unwrap_or_else(|_| panic!("burst {burst} was not delivered"));
        assert!(tracker.outcome().is_ok());
    }
    let got = poll_exactly(consumer.as_mut(), 100).await;
    let expected: Vec<String> = (0..5)
        .flat_map(|burst| (0..20).map(move |i| format!("{burst}-{i}")))
        .collect();
    assert_eq!(values(&got), expected);
    consumer.close().await.unwrap();
}

/// Gives a record of some value its key and headers.
type Shape = fn(OutgoingRecord) -> OutgoingRecord;

/// The lane refuses a record too large for `message.max.bytes` in the caller's thread, as
/// librdkafka would have: the same records at the same sizes, with the same error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_refuses_exactly_the_records_the_client_refuses_as_too_large() {
    let (_mock, id, _) = setup(1);
    let limit = properties(&[("message.max.bytes", "2000")]);
    let lane = laned(&id, limit.clone());
    let direct = KafkaTransport::new(limit).unwrap().cluster(&id).unwrap();
    let shapes: [(&str, Shape); 3] = [
        ("no key, no headers", |record| record),
        ("a key", |record| record.with_key("key-of-some-length")),
        ("a key and headers", |record| {
            // A value of 100 bytes takes a two-byte length: the sizes' encodings count too.
            record
                .with_key("k")
                .with_header("trace", "x".repeat(100))
                .with_header("h", "")
        }),
    ];
    for (shape, build) in shapes {
        let (mut accepted, mut refused) = (0, 0);
        for size in 1_800..1_980 {
            let record = build(OutgoingRecord::new(vec![b'v'; size]));
            let by_lane = lane.try_produce_one("t", record.clone(), None);
            let by_client = direct.try_produce_one("t", record, None);
            match (by_lane, by_client) {
                (Ok(None), Ok(None)) => accepted += 1,
                (Err(lane_error), Err(client_error)) => {
                    assert_eq!(lane_error.to_string(), client_error.to_string());
                    refused += 1;
                }
                (by_lane, by_client) => {
                    panic!("{shape}, value of {size} bytes: lane {by_lane:?}, client {by_client:?}")
                }
            }
        }
        assert!(
            accepted > 0 && refused > 0,
            "{shape}: the sizes cross the limit"
        );
    }
    lane.flush().await.unwrap();
    direct.flush().await.unwrap();
}

/// The lane holds at most as many records as the client's queue: with both full, the caller
/// gets its record back (and awaits room) instead of records piling up. Once the queue has room
/// again (here: its records time out, failing their deliveries), the lane takes records again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_client_queue_hands_records_back_to_the_caller() {
    let id = ClusterId::from_addresses([format!("127.0.0.1:{}", closed_port())]);
    let cluster = laned(
        &id,
        properties(&[
            ("queue.buffering.max.messages", "5"),
            ("message.timeout.ms", "1000"),
        ]),
    );
    let tracker = DeliveryTracker::new();
    let mut taken = 0;
    while cluster
        .try_produce_one("t", OutgoingRecord::new("x"), Some(&tracker))
        .unwrap()
        .is_none()
    {
        taken += 1;
        assert!(
            taken <= 10,
            "the client's queue and the lane hold 5 records each"
        );
    }
    assert!(
        taken >= 5,
        "the lane takes as many records as the client's queue"
    );
    assert_eq!(
        tracker.pending(),
        taken,
        "records count from when the lane takes them"
    );
    let deadline = Instant::now() + WAIT;
    while cluster
        .try_produce_one("t", OutgoingRecord::new("x"), Some(&tracker))
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "the lane took nothing again");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(WAIT, cluster.flush())
        .await
        .expect("the flush waits for the timed-out deliveries only")
        .unwrap();
    assert_eq!(tracker.pending(), 0);
    assert_eq!(cluster.delivery_failures(), taken as u64 + 1);
    assert!(tracker.outcome().is_err(), "the timed-out records failed");
}
