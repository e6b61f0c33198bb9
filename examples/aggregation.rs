//! The guide's example #2 in Rust: consume `preprocessed_signals` from two clusters and
//! aggregate them as `predictions` on cluster 1.
//!
//! `cargo run --example aggregation` (in memory), or with `--features kafka -- HOST:PORT HOST:PORT`.

#[path = "common/mod.rs"]
pub mod common;

use common::{brokers, TestMsg};
use fastkafka::app::{App, Json, TestHarness};
use fastkafka::{KafkaBrokers, MemoryBroker};

/// Both clusters' signals become predictions on cluster 1.
pub fn aggregation_app(
    cluster_1: &KafkaBrokers,
    cluster_2: &KafkaBrokers,
) -> fastkafka::Result<App> {
    let mut app = App::new(cluster_1.clone());
    let predictions = app.producer::<TestMsg>("predictions", None, Json)?;
    for source in [None, Some(cluster_2)] {
        let predictions = predictions.clone();
        app.consumer("preprocessed_signals", source, Json, move |msg: TestMsg| {
            let predictions = predictions.clone();
            async move { predictions.send(&msg).await }
        })?;
    }
    Ok(app)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> fastkafka::Result<()> {
    if let Some((first, second)) = common::addresses_from_args() {
        return common::run_until_ctrl_c(&aggregation_app(&brokers(&first), &brokers(&second))?)
            .await;
    }
    let (cluster_1, cluster_2) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let app = aggregation_app(&cluster_1, &cluster_2)?;
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let mut predictions = harness
        .watch::<TestMsg, _>("predictions", None, Json)
        .await?;
    let running = app.start(harness.transport()).await?;
    harness.send(
        "preprocessed_signals",
        None,
        &Json,
        &TestMsg::new("from server_1"),
    )?;
    harness.send(
        "preprocessed_signals",
        Some(&cluster_2),
        &Json,
        &TestMsg::new("from server_2"),
    )?;
    for _ in 0..2 {
        println!("prediction on server_1: {:?}", predictions.next().await?);
    }
    running.stop().await
}
