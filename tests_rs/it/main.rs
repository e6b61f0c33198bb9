//! One integration-test binary for the crate (so heavy dependencies link once); each module
//! covers one part of the core.

mod app;
mod consumer_loop;
mod delivery;
mod docs;
mod dropping;
mod failover;
mod failures;
mod hand_over;
mod health;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "kafka")]
mod kafka_clusters;
#[cfg(feature = "kafka")]
mod kafka_groupless;
#[cfg(feature = "kafka")]
mod kafka_oauth;
#[cfg(feature = "kafka")]
mod kafka_send_lane;
#[cfg(feature = "kafka")]
mod kafka_start;
mod partitions;
#[cfg(feature = "kafka")]
mod tansu;

mod app_examples;
mod memory_broker;
mod read_ahead;
mod registry;
mod runtime;
mod spans;
mod window;

use std::time::Duration;

use std::sync::Arc;

use fastkafka::{Cluster, ClusterConsumer, ClusterId, Record, Subscription};

/// Long enough for any healthy wait in these tests, short enough to fail fast when broken.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn cluster_id(name: &str) -> ClusterId {
    ClusterId::from_addresses([format!("{name}:9092")])
}

/// A consumer of topic `t` in group `g`.
pub async fn member_of_g(cluster: &Arc<dyn Cluster>) -> Box<dyn ClusterConsumer> {
    cluster
        .subscribe(Subscription::new(["t"]).with_group("g"))
        .await
        .expect("subscribe")
}

/// Polls until `count` records arrived, failing after [`WAIT`].
pub async fn poll_exactly(consumer: &mut dyn ClusterConsumer, count: usize) -> Vec<Record> {
    let mut records = Vec::new();
    while records.len() < count {
        let batch = tokio::time::timeout(WAIT, consumer.poll(count - records.len()))
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} records arrived", records.len()))
            .expect("poll");
        records.extend(batch);
    }
    assert_eq!(records.len(), count, "more records than asked for");
    records
}

/// Asserts that nothing arrives within a short grace period.
pub async fn assert_nothing_arrives(consumer: &mut dyn ClusterConsumer) {
    let polled = tokio::time::timeout(Duration::from_millis(100), consumer.poll(10)).await;
    assert!(polled.is_err(), "unexpected records: {polled:?}");
}

pub fn values(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.as_deref().unwrap_or_default().to_vec()).unwrap())
        .collect()
}
