//! The in-memory broker's Kafka semantics: ordering, partitioning, groups, offsets, isolation.

use std::collections::{BTreeMap, BTreeSet};

use fastkafka::{
    ClusterConsumer, MemoryBroker, OffsetReset, OutgoingRecord, Subscription, TopicPartition,
    Transport,
};

use super::{assert_nothing_arrives, cluster_id, poll_exactly, values};

fn numbered(range: std::ops::Range<usize>) -> Vec<OutgoingRecord> {
    range.map(|i| OutgoingRecord::new(i.to_string())).collect()
}

#[tokio::test]
async fn each_partition_keeps_produce_order() {
    let broker = MemoryBroker::with_default_partitions(3);
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let records: Vec<OutgoingRecord> = (0..300)
        .map(|i| OutgoingRecord::new(i.to_string()).with_key(format!("k{}", i % 7)))
        .collect();
    cluster.produce("t", records).unwrap();
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let got = poll_exactly(consumer.as_mut(), 300).await;

    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut per_key: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
    for record in &got {
        per_partition
            .entry(record.partition)
            .or_default()
            .push(record.offset);
        let value: usize = String::from_utf8(record.value.as_deref().unwrap().to_vec())
            .unwrap()
            .parse()
            .unwrap();
        per_key
            .entry(record.key.clone().unwrap().to_vec())
            .or_default()
            .push(value);
    }
    assert_eq!(
        per_partition.len(),
        3,
        "7 keys should spread over 3 partitions"
    );
    for offsets in per_partition.values() {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &expected, "offsets are dense and in order");
    }
    for sent in per_key.values() {
        assert!(
            sent.windows(2).all(|w| w[0] < w[1]),
            "one key's records stay in order"
        );
    }
}

#[tokio::test]
async fn a_key_always_maps_to_the_same_partition_even_in_batches() {
    let broker = MemoryBroker::with_default_partitions(4);
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    for round in 0..5 {
        let batch = (0..20)
            .map(|k| OutgoingRecord::new(format!("{round}")).with_key(format!("key-{k}")))
            .collect();
        cluster.produce("t", batch).unwrap();
    }
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let got = poll_exactly(consumer.as_mut(), 100).await;
    let mut partitions_of_key: BTreeMap<Vec<u8>, BTreeSet<i32>> = BTreeMap::new();
    for record in &got {
        let key = record.key.as_ref().expect("keys survive batch sends");
        partitions_of_key
            .entry(key.to_vec())
            .or_default()
            .insert(record.partition);
    }
    assert_eq!(partitions_of_key.len(), 20);
    assert!(partitions_of_key.values().all(|p| p.len() == 1));
    let used: BTreeSet<i32> = partitions_of_key.values().flatten().copied().collect();
    assert!(
        used.len() > 1,
        "20 keys should not all hash to one partition"
    );
}

#[tokio::test]
async fn keyless_records_spread_over_partitions_and_headers_survive() {
    let broker = MemoryBroker::with_default_partitions(4);
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let batch = (0..8)
        .map(|i| OutgoingRecord::new(i.to_string()).with_header("trace", format!("t{i}")))
        .collect();
    cluster.produce("t", batch).unwrap();
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let got = poll_exactly(consumer.as_mut(), 8).await;
    let used: BTreeSet<i32> = got.iter().map(|r| r.partition).collect();
    assert_eq!(used.len(), 4);
    for record in &got {
        let value = String::from_utf8(record.value.as_deref().unwrap().to_vec()).unwrap();
        assert_eq!(
            record.headers,
            vec![("trace".to_owned(), Some(format!("t{value}").into()))]
        );
    }
}

#[tokio::test]
async fn clusters_are_isolated() {
    let broker = MemoryBroker::new();
    let one = broker.cluster(&cluster_id("one")).unwrap();
    let two = broker.cluster(&cluster_id("two")).unwrap();
    let mut on_one = one.subscribe(Subscription::new(["t"])).await.unwrap();
    let mut on_two = two.subscribe(Subscription::new(["t"])).await.unwrap();
    one.produce("t", vec![OutgoingRecord::new("for one")])
        .unwrap();
    two.produce("t", vec![OutgoingRecord::new("for two")])
        .unwrap();
    assert_eq!(values(&poll_exactly(on_one.as_mut(), 1).await), ["for one"]);
    assert_eq!(values(&poll_exactly(on_two.as_mut(), 1).await), ["for two"]);
    assert_nothing_arrives(on_one.as_mut()).await;
    assert_nothing_arrives(on_two.as_mut()).await;

    // The same servers written in another order are the same cluster.
    let a = fastkafka::ClusterId::from_addresses(["x:1", "y:2"]);
    let b = fastkafka::ClusterId::from_addresses(["y:2", "x:1", "x:1"]);
    assert_eq!(a, b);
}

#[tokio::test]
async fn latest_skips_what_was_there_and_earliest_reads_it() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    cluster.produce("t", numbered(0..3)).unwrap();
    let mut latest = cluster
        .subscribe(Subscription::new(["t"]).with_offset_reset(OffsetReset::Latest))
        .await
        .unwrap();
    let mut earliest = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    cluster.produce("t", numbered(3..4)).unwrap();
    assert_eq!(values(&poll_exactly(latest.as_mut(), 1).await), ["3"]);
    assert_eq!(
        values(&poll_exactly(earliest.as_mut(), 4).await),
        ["0", "1", "2", "3"]
    );
}

#[tokio::test]
async fn max_records_is_honoured() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    cluster.produce("t", numbered(0..250)).unwrap();
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let sizes = [
        consumer.poll(100).await.unwrap().len(),
        consumer.poll(100).await.unwrap().len(),
        consumer.poll(100).await.unwrap().len(),
    ];
    assert_eq!(sizes, [100, 100, 50]);
}

#[tokio::test]
async fn a_restarted_group_member_resumes_from_its_committed_offset() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    cluster.produce("t", numbered(0..10)).unwrap();
    let group = Subscription::new(["t"]).with_group("g");

    let mut first = cluster.subscribe(group.clone()).await.unwrap();
    let got = poll_exactly(first.as_mut(), 10).await;
    first.store_offsets(&got[..6]).unwrap(); // finished 0..=5, crashed during 6..10
    first.close().await.unwrap();
    let tp = TopicPartition::new("t", 0);
    assert_eq!(
        broker
            .memory_cluster(&cluster_id("a"))
            .committed_offset("g", &tp),
        Some(6)
    );

    let mut second = cluster.subscribe(group.clone()).await.unwrap();
    let resumed = poll_exactly(second.as_mut(), 4).await;
    assert_eq!(values(&resumed), ["6", "7", "8", "9"]);
    // A member dropped without closing (a crash) loses what it stored but did not commit.
    second.store_offsets(&resumed).unwrap();
    drop(second);
    let mut third = cluster.subscribe(group).await.unwrap();
    assert_eq!(poll_exactly(third.as_mut(), 4).await[0].offset, 6);
}

#[tokio::test]
async fn group_members_split_partitions_and_rebalance_as_they_join_and_leave() {
    const PARTITIONS: usize = 6;
    let broker = MemoryBroker::with_default_partitions(PARTITIONS);
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let group = Subscription::new(["t"]).with_group("g");

    for members in 1..=4usize {
        let mut consumers: Vec<Box<dyn ClusterConsumer>> = Vec::new();
        for _ in 0..members {
            consumers.push(cluster.subscribe(group.clone()).await.unwrap());
        }
        // Each member polls until it settles; rebalancing happens at poll time.
        cluster.produce("t", numbered(0..PARTITIONS * 10)).unwrap();
        let mut seen = BTreeSet::new();
        let mut total = 0;
        while total < PARTITIONS * 10 {
            for consumer in consumers.iter_mut() {
                if let Ok(Ok(batch)) =
                    tokio::time::timeout(std::time::Duration::from_millis(20), consumer.poll(1000))
                        .await
                {
                    total += batch.len();
                    for r in &batch {
                        assert!(
                            seen.insert((r.partition, r.offset)),
                            "a record was delivered twice"
                        );
                    }
                    consumer.store_offsets(&batch).unwrap();
                }
            }
        }
        let assignments: Vec<Vec<TopicPartition>> =
            consumers.iter().map(|c| c.assignment()).collect();
        let all: BTreeSet<&TopicPartition> = assignments.iter().flatten().collect();
        assert_eq!(
            all.len(),
            PARTITIONS,
            "every partition is owned with {members} members"
        );
        assert_eq!(
            assignments.iter().map(Vec::len).sum::<usize>(),
            PARTITIONS,
            "no partition has two owners"
        );
        for assignment in &assignments {
            let fair = PARTITIONS / members;
            assert!(assignment.len() == fair || assignment.len() == fair + 1);
        }
        for consumer in consumers {
            consumer.close().await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_partition_moves_only_after_its_owner_finished_and_committed() {
    let broker = MemoryBroker::with_default_partitions(2);
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let group = Subscription::new(["t"]).with_group("g");
    let mut first = cluster.subscribe(group.clone()).await.unwrap();
    cluster.produce("t", numbered(0..10)).unwrap();
    let in_flight = poll_exactly(first.as_mut(), 10).await; // owns both partitions

    let mut second = cluster.subscribe(group).await.unwrap();
    // While `first` still holds its batch, `second` must not get the same records.
    assert_nothing_arrives(second.as_mut()).await;
    first.store_offsets(&in_flight).unwrap();
    cluster.produce("t", numbered(10..20)).unwrap();
    // `first`'s next poll hands one partition over, committing what it finished.
    let mut seen: Vec<String> = Vec::new();
    let from_first = tokio::time::timeout(super::WAIT, first.poll(100))
        .await
        .unwrap()
        .unwrap();
    seen.extend(values(&from_first));
    let from_second = tokio::time::timeout(super::WAIT, second.poll(100))
        .await
        .unwrap()
        .unwrap();
    seen.extend(values(&from_second));
    seen.sort_by_key(|v| v.parse::<u32>().unwrap());
    let expected: Vec<String> = (10..20).map(|i| i.to_string()).collect();
    assert_eq!(
        seen, expected,
        "after the handover each new record arrives exactly once"
    );
    assert_eq!(first.assignment().len(), 1);
    assert_eq!(second.assignment().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_producers_and_consumers_lose_nothing() {
    const PRODUCERS: usize = 8;
    const PER_PRODUCER: usize = 2_000;
    let broker = MemoryBroker::with_default_partitions(4);
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let group = Subscription::new(["t"]).with_group("g");

    let mut consumers = Vec::new();
    for _ in 0..3 {
        let mut consumer = cluster.subscribe(group.clone()).await.unwrap();
        consumers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Ok(Ok(batch)) =
                tokio::time::timeout(std::time::Duration::from_millis(300), consumer.poll(500))
                    .await
            {
                consumer.store_offsets(&batch).unwrap();
                seen.extend(values(&batch));
            }
            consumer.close().await.unwrap();
            seen
        }));
    }
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                for chunk in 0..PER_PRODUCER / 100 {
                    let batch = (0..100)
                        .map(|i| OutgoingRecord::new(format!("{p}-{}", chunk * 100 + i)))
                        .collect();
                    cluster.produce("t", batch).unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.unwrap();
    }
    let mut all = Vec::new();
    for consumer in consumers {
        all.extend(consumer.await.unwrap());
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        unique.len(),
        PRODUCERS * PER_PRODUCER,
        "every record arrived"
    );
    assert_eq!(
        all.len(),
        PRODUCERS * PER_PRODUCER,
        "no record arrived twice"
    );
}

#[tokio::test]
async fn a_waiting_consumer_wakes_when_a_record_arrives() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let mut consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let waiting = tokio::spawn(async move { poll_exactly(consumer.as_mut(), 1).await });
    tokio::task::yield_now().await;
    cluster
        .produce("t", vec![OutgoingRecord::new("late")])
        .unwrap();
    assert_eq!(values(&waiting.await.unwrap()), ["late"]);
}

#[tokio::test]
async fn a_waiting_consumer_of_two_topics_wakes_for_either_and_not_for_others() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let mut consumer = cluster
        .subscribe(Subscription::new(["t", "u"]))
        .await
        .unwrap();
    let mut other = cluster.subscribe(Subscription::new(["v"])).await.unwrap();
    for (topic, value) in [("u", "to u"), ("t", "to t")] {
        let waiting = tokio::spawn(async move {
            let records = poll_exactly(consumer.as_mut(), 1).await;
            (consumer, records)
        });
        tokio::task::yield_now().await;
        cluster
            .produce(topic, vec![OutgoingRecord::new(value)])
            .unwrap();
        let records;
        (consumer, records) = waiting.await.unwrap();
        assert_eq!(values(&records), [value]);
    }
    assert_nothing_arrives(other.as_mut()).await;
}

#[tokio::test]
async fn a_waiting_group_member_takes_over_the_partition_its_owner_leaves() {
    let broker = MemoryBroker::with_default_partitions(1);
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let group = Subscription::new(["t"]).with_group("g");
    let mut owner = cluster.subscribe(group.clone()).await.unwrap();
    let mut idle = cluster.subscribe(group).await.unwrap();
    cluster
        .produce("t", vec![OutgoingRecord::new("first")])
        .unwrap();
    let first = poll_exactly(owner.as_mut(), 1).await;
    owner.store_offsets(&first).unwrap();
    // The second member owns nothing: it waits until the owner's leaving wakes it.
    cluster
        .produce("t", vec![OutgoingRecord::new("second")])
        .unwrap();
    let waiting = tokio::spawn(async move { poll_exactly(idle.as_mut(), 1).await });
    tokio::task::yield_now().await;
    owner.close().await.unwrap();
    assert_eq!(values(&waiting.await.unwrap()), ["second"]);
}
