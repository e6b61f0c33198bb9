//! Starting an app on real clients (Tansu): the consumers subscribe while the clusters are
//! checked, and a start that fails leaves nothing behind.

use std::sync::Arc;
use std::time::Duration;

use fastkafka::app::{App, Json};
use fastkafka::transport::kafka::KafkaTransport;
use fastkafka::{ClusterId, Subscription, Transport};

use super::kafka::{closed_port, localhost_brokers};
use super::tansu::Tansu;

/// The consumer of a reachable cluster subscribes (joins its group) while the producer's
/// cluster is checked. When that check fails, the start must close it: the group's next member
/// is given every partition, where a member left behind would keep some of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_closes_the_consumers_subscribed_meanwhile() {
    let broker = Tansu::start("start_closes");
    broker.create_topic("t", 2);
    let id = ClusterId::from_addresses([broker.address()]);
    let transport = Arc::new(KafkaTransport::new(Default::default()).unwrap());
    let port = closed_port();
    let down: fastkafka::KafkaBrokers = serde_json::from_value(serde_json::json!({
        "localhost": {"url": "127.0.0.1", "port": port}
    }))
    .unwrap();
    let mut app = App::new(localhost_brokers(&id)).start_timeout(Duration::from_secs(3));
    app.producer::<serde_json::Value>("out", Some(&down), Json)
        .unwrap();
    app.consumer("t", None, Json, |_: serde_json::Value| async {
        Ok::<(), String>(())
    })
    .unwrap()
    .group_id("g");
    let error = app
        .start(transport.clone())
        .await
        .expect_err("the producer's cluster does not answer");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cluster 127.0.0.1:{port}: unreachable at start")),
        "{error}"
    );
    let next = transport
        .cluster(&id)
        .unwrap()
        .subscribe(Subscription::new(["t"]).with_group("g"))
        .await
        .unwrap();
    let mut partitions: Vec<i32> = next.assignment().iter().map(|p| p.partition).collect();
    partitions.sort_unstable();
    assert_eq!(
        partitions,
        [0, 1],
        "a member of the failed start kept partitions"
    );
    next.close().await.unwrap();
}
