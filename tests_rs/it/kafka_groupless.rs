//! A Kafka consumer without a group (FastKafka's default), against librdkafka's mock cluster:
//! it takes every partition, each starting where its `auto_offset_reset` says.

use std::collections::BTreeSet;

use fastkafka::{OffsetReset, OutgoingRecord, Subscription, TopicPartition, Transport};

use super::kafka::setup;
use super::{assert_nothing_arrives, poll_exactly, values};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groupless_consumer_reads_every_partition() {
    let (_mock, id, transport) = setup(3);
    let cluster = transport.cluster(&id).unwrap();
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let mut assignment = consumer.assignment();
    assignment.sort();
    assert_eq!(
        assignment,
        (0..3)
            .map(|p| TopicPartition::new("t", p))
            .collect::<Vec<_>>()
    );
    cluster
        .produce(
            "t",
            (0..30)
                .map(|i| OutgoingRecord::new(i.to_string()).with_key(i.to_string()))
                .collect(),
        )
        .unwrap();
    let got = poll_exactly(consumer.as_mut(), 30).await;
    let partitions: BTreeSet<i32> = got.iter().map(|r| r.partition).collect();
    assert_eq!(partitions.len(), 3);
    let missing = cluster
        .subscribe(Subscription::new(["absent"]))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("'absent'"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groupless_consumer_starts_every_partition_where_its_reset_says() {
    let (_mock, id, transport) = setup(3);
    let cluster = transport.cluster(&id).unwrap();
    let keyed = |range: std::ops::Range<i32>| -> Vec<OutgoingRecord> {
        range
            .map(|i| OutgoingRecord::new(i.to_string()).with_key(i.to_string()))
            .collect()
    };
    cluster.produce("t", keyed(0..30)).unwrap();
    cluster.flush().await.unwrap();
    let mut earliest = cluster
        .subscribe(Subscription::new(["t"]).with_offset_reset(OffsetReset::Earliest))
        .await
        .unwrap();
    let mut latest = cluster
        .subscribe(Subscription::new(["t"]).with_offset_reset(OffsetReset::Latest))
        .await
        .unwrap();
    cluster.produce("t", keyed(30..36)).unwrap();
    let read: BTreeSet<String> = values(&poll_exactly(earliest.as_mut(), 36).await)
        .into_iter()
        .collect();
    assert_eq!(read, (0..36).map(|i| i.to_string()).collect());
    let after = poll_exactly(latest.as_mut(), 6).await;
    let partitions: BTreeSet<i32> = after.iter().map(|r| r.partition).collect();
    assert_eq!(partitions.len(), 3, "every partition starts at its end");
    let mut after = values(&after);
    after.sort();
    assert_eq!(after, ["30", "31", "32", "33", "34", "35"]);
    assert_nothing_arrives(latest.as_mut()).await;
}
