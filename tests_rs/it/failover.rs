//! Failing over to a standby cluster, in memory: the guide's forwarding app with a standby for
//! its source and its destination. The destination is lost (outputs move to its standby,
//! those queued for it too, and inputs still commit), then the source (the consumer moves to
//! the source's standby, kept in step by a mirror, and rewinds there), then both come back
//! and the app moves back. Nothing is lost on the way.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fastkafka::app::{App, Json, RunningApp};
use fastkafka::transport::failover::FailoverPolicy;
use fastkafka::{Cluster, ClusterId, KafkaBrokers, MemoryBroker, MemoryCluster, OutgoingRecord};

use super::WAIT;

const SOURCE: &str = "source:9092";
const SOURCE_STANDBY: &str = "source-standby:9092";
const DESTINATION: &str = "destination:9092";
const DESTINATION_STANDBY: &str = "destination-standby:9092";

fn with_standby(primary: &str, standby: &str) -> KafkaBrokers {
    let (url, port) = primary.split_once(':').unwrap();
    let (standby_url, standby_port) = standby.split_once(':').unwrap();
    serde_json::from_value(serde_json::json!({"localhost": {
        "url": url, "port": port, "standby": {"url": standby_url, "port": standby_port}}}))
    .unwrap()
}

fn id(address: &str) -> ClusterId {
    ClusterId::from_addresses([address])
}

fn forwarding_app(policy: FailoverPolicy) -> App {
    let mut app = App::new(with_standby(SOURCE, SOURCE_STANDBY)).failover(policy);
    let destination = with_standby(DESTINATION, DESTINATION_STANDBY);
    let forward = app
        .producer::<u64>("outputs", Some(&destination), Json)
        .unwrap();
    app.consumer("inputs", None, Json, move |n: u64| {
        let forward = forward.clone();
        async move { forward.send(&n).await }
    })
    .unwrap()
    .group_id("forwarder")
    .commit_interval(Some(Duration::from_millis(50)));
    app
}

fn send(cluster: &MemoryCluster, numbers: std::ops::Range<u64>) {
    let records = numbers
        .map(|n| OutgoingRecord::new(n.to_string().into_bytes()))
        .collect();
    cluster.produce("inputs", records).unwrap();
}

fn numbers(cluster: &MemoryCluster) -> Vec<u64> {
    cluster
        .records("outputs")
        .iter()
        .map(|r| {
            std::str::from_utf8(r.value.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// Waits until `condition` holds, failing after `within` with `what`.
async fn until(within: Duration, what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn standby_active(running: &RunningApp, cluster: &str) -> Option<bool> {
    let health = running.health();
    let found = health.clusters.iter().find(|c| c.cluster == cluster)?;
    found.standby.as_ref().map(|standby| standby.active)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarding_app_fails_over_and_back_on_both_sides_and_loses_nothing() {
    let broker = MemoryBroker::new();
    let source = broker.memory_cluster(&id(SOURCE));
    let source_standby = broker.memory_cluster(&id(SOURCE_STANDBY));
    let destination = broker.memory_cluster(&id(DESTINATION));
    let destination_standby = broker.memory_cluster(&id(DESTINATION_STANDBY));
    broker.mirror(&id(SOURCE), &id(SOURCE_STANDBY));
    let policy = FailoverPolicy {
        after: Duration::from_millis(300),
        rewind: Duration::from_millis(1),
        failback: true,
    };
    let running = forwarding_app(policy)
        .start(Arc::new(broker.clone()))
        .await
        .unwrap();
    assert_eq!(standby_active(&running, SOURCE), Some(false));

    send(&source, 0..50);
    until(WAIT, "50 forwarded", || numbers(&destination).len() == 50).await;

    // The destination is lost: what is produced meanwhile waits, then moves to its standby.
    broker.take_down(&id(DESTINATION));
    send(&source, 50..80);
    // The queued outputs move to the standby before the pair reports it active (the move
    // comes first so that each key keeps its order), so both are waited for.
    until(
        WAIT,
        "outputs on the destination's standby, reported active",
        || {
            numbers(&destination_standby).len() >= 30
                && standby_active(&running, DESTINATION) == Some(true)
        },
    )
    .await;
    until(
        WAIT,
        "inputs committed once their outputs are acknowledged",
        || {
            source.committed_offset("forwarder", &fastkafka::TopicPartition::new("inputs", 0))
                == Some(80)
        },
    )
    .await;

    // The source is lost: upstream producers write to its standby; the consumer follows.
    broker.take_down(&id(SOURCE));
    send(&source_standby, 80..120);
    until(WAIT, "inputs read from the source's standby", || {
        numbers(&destination_standby).contains(&119)
    })
    .await;
    assert_eq!(standby_active(&running, SOURCE), Some(true));
    let metrics = fastkafka::metrics::render();
    assert!(
        metrics.contains(&format!(
            "fastkafka_cluster_active{{cluster=\"{SOURCE_STANDBY}\",role=\"standby\"}} 1"
        )),
        "{metrics}"
    );

    // Both come back: after `after` of answering again, the app moves back.
    broker.bring_back(&id(DESTINATION));
    broker.bring_back(&id(SOURCE));
    until(WAIT, "back on both primaries", || {
        standby_active(&running, SOURCE) == Some(false)
            && standby_active(&running, DESTINATION) == Some(false)
    })
    .await;
    send(&source, 120..150);
    until(
        WAIT,
        "new inputs forwarded to the destination again",
        || numbers(&destination).contains(&149),
    )
    .await;
    let health = running.health();
    let switches = health
        .clusters
        .iter()
        .map(|c| c.standby.as_ref().map_or(0, |s| s.switches))
        .sum::<u64>();
    assert_eq!(switches, 4, "over and back, on each side: {health:#?}");
    running.stop().await.unwrap();

    let mut forwarded: Vec<u64> = numbers(&destination);
    forwarded.extend(numbers(&destination_standby));
    let distinct: BTreeSet<u64> = forwarded.iter().copied().collect();
    assert_eq!(distinct, (0..150).collect(), "every input forwarded");
    // What is replayed is what the rewind covers: on the source's standby, the inputs from the
    // last one finished on the primary (79) minus the rewind on. Moving back replays nothing:
    // the primary has nothing that recent (no mirror runs back).
    let mirrored = source_standby.records("inputs");
    let last_finished = mirrored[79].timestamp_ms;
    let rewind_ms = policy.rewind.as_millis() as i64;
    let covered = mirrored[..80]
        .iter()
        .filter(|r| r.timestamp_ms >= last_finished - rewind_ms)
        .count();
    assert_eq!(
        forwarded.len() - 150,
        covered,
        "replayed: what the rewind covers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_started_while_its_primary_is_lost_starts_on_the_standby_and_moves_back() {
    let broker = MemoryBroker::new();
    broker.take_down(&id(SOURCE));
    broker.take_down(&id(DESTINATION));
    let policy = FailoverPolicy {
        after: Duration::from_millis(200),
        ..FailoverPolicy::default()
    };
    let mut app = forwarding_app(policy).start_timeout(Duration::from_secs(2));
    app = app.stop_timeout(Duration::from_secs(2));
    let running = app.start(Arc::new(broker.clone())).await.unwrap();
    assert_eq!(standby_active(&running, SOURCE), Some(true));
    assert_eq!(standby_active(&running, DESTINATION), Some(true));
    send(&broker.memory_cluster(&id(SOURCE_STANDBY)), 0..10);
    let destination_standby = broker.memory_cluster(&id(DESTINATION_STANDBY));
    until(WAIT, "forwarded on the standbys", || {
        numbers(&destination_standby).len() == 10
    })
    .await;

    broker.bring_back(&id(SOURCE));
    broker.bring_back(&id(DESTINATION));
    until(WAIT, "back on the primaries", || {
        standby_active(&running, SOURCE) == Some(false)
            && standby_active(&running, DESTINATION) == Some(false)
    })
    .await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_standby_that_answers_a_lost_primary_still_fails_the_start() {
    let broker = MemoryBroker::new();
    broker.take_down(&id(SOURCE));
    broker.take_down(&id(SOURCE_STANDBY));
    let app = forwarding_app(FailoverPolicy::default()).start_timeout(Duration::from_millis(400));
    let error = app
        .start(Arc::new(broker.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!("cluster {SOURCE}")) && error.contains("unreachable at start"),
        "{error}"
    );
}

/// librdkafka underneath: records queued for a primary whose brokers are all down are purged
/// from its client when the pair moves, sent to the standby, and settled there in the tracker
/// of the batch that sent them — the input they stand for can commit.
#[cfg(feature = "kafka")]
mod kafka {
    use fastkafka::delivery::DeliveryTracker;
    use fastkafka::transport::failover::{FailoverCluster, Side};
    use fastkafka::{Subscription, Transport};

    use super::*;
    use crate::kafka::setup;
    use crate::poll_exactly;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_queued_for_a_lost_primary_are_delivered_by_the_standby_in_order() {
        let (primary_mock, primary_id, transport) = setup(1);
        let (_standby_mock, standby_id, _) = setup(1);
        let pair = FailoverCluster::new(
            transport.cluster(&primary_id).unwrap(),
            transport.cluster(&standby_id).unwrap(),
            FailoverPolicy {
                after: Duration::from_millis(300),
                ..FailoverPolicy::default()
            },
        );
        let tracker = DeliveryTracker::new();
        primary_mock.broker_down(-1).unwrap();
        let records: Vec<OutgoingRecord> = (0..20)
            .map(|n| OutgoingRecord::new(n.to_string()))
            .collect();
        let rest = pair
            .try_produce_tracked("t", records, Some(&tracker))
            .unwrap();
        assert!(rest.is_empty());
        assert!(!tracker.is_settled(), "the primary cannot take them");

        until(
            Duration::from_secs(30),
            "the pair moved to the standby",
            || pair.side() == Side::Standby,
        )
        .await;
        tokio::time::timeout(Duration::from_secs(30), tracker.settled())
            .await
            .expect("settled by the standby");
        tracker.outcome().expect("delivered, not failed");
        let mut consumer = transport
            .cluster(&standby_id)
            .unwrap()
            .subscribe(Subscription::new(["t"]))
            .await
            .unwrap();
        let more: Vec<OutgoingRecord> = (20..30)
            .map(|n| OutgoingRecord::new(n.to_string()))
            .collect();
        let rest = pair.try_produce_tracked("t", more, None).unwrap();
        assert!(rest.is_empty(), "new sends go straight to the standby");
        let delivered = poll_exactly(consumer.as_mut(), 30).await;
        let values: Vec<String> = delivered
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        let expected: Vec<String> = (0..30).map(|n| n.to_string()).collect();
        assert_eq!(
            values, expected,
            "moved in the order sent, before new sends"
        );
    }
}
