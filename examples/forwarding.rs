//! The guide's example #1 in Rust: forward `preprocessed_signals` from cluster 1 to cluster 2.
//!
//! `cargo run --example forwarding` runs it on the in-memory broker and shows a message
//! crossing; `cargo run --features kafka --example forwarding -- HOST:PORT HOST:PORT` runs it
//! on two real clusters until Ctrl-C.

#[path = "common/mod.rs"]
pub mod common;

use common::{brokers, TestMsg};
use fastkafka::app::{App, Json, TestHarness};
use fastkafka::{KafkaBrokers, MemoryBroker};

/// Consume on cluster 1, produce the same message to cluster 2.
pub fn forwarding_app(
    cluster_1: &KafkaBrokers,
    cluster_2: &KafkaBrokers,
) -> fastkafka::Result<App> {
    let mut app = App::new(cluster_1.clone());
    let forward = app.producer::<TestMsg>("preprocessed_signals", Some(cluster_2), Json)?;
    app.consumer("preprocessed_signals", None, Json, move |msg: TestMsg| {
        let forward = forward.clone();
        async move { forward.send(&msg).await }
    })?;
    Ok(app)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> fastkafka::Result<()> {
    if let Some((first, second)) = common::addresses_from_args() {
        return common::run_until_ctrl_c(&forwarding_app(&brokers(&first), &brokers(&second))?)
            .await;
    }
    let (cluster_1, cluster_2) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let app = forwarding_app(&cluster_1, &cluster_2)?;
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let mut forwarded = harness
        .watch::<TestMsg, _>("preprocessed_signals", Some(&cluster_2), Json)
        .await?;
    let running = app.start(harness.transport()).await?;
    harness.send("preprocessed_signals", None, &Json, &TestMsg::new("signal"))?;
    println!("forwarded to server_2: {:?}", forwarded.next().await?);
    running.stop().await
}
