//! The guide's example #3 in Rust: one signal on cluster 1 becomes a prediction on both
//! clusters.
//!
//! `cargo run --example fan_out` (in memory), or with `--features kafka -- HOST:PORT HOST:PORT`.

#[path = "common/mod.rs"]
pub mod common;

use common::{brokers, TestMsg};
use fastkafka::app::{App, Json, TestHarness};
use fastkafka::{KafkaBrokers, MemoryBroker};

/// Each signal on cluster 1 produces a prediction to `predictions` on both clusters.
pub fn fan_out_app(cluster_1: &KafkaBrokers, cluster_2: &KafkaBrokers) -> fastkafka::Result<App> {
    let mut app = App::new(cluster_1.clone());
    let to_1 = app.producer::<TestMsg>("predictions", None, Json)?;
    let to_2 = app.producer::<TestMsg>("predictions", Some(cluster_2), Json)?;
    app.consumer(
        "preprocessed_signals",
        None,
        Json,
        move |_signal: TestMsg| {
            let (to_1, to_2) = (to_1.clone(), to_2.clone());
            async move {
                let prediction = TestMsg::new("prediction");
                to_1.send(&prediction).await?;
                to_2.send(&prediction).await
            }
        },
    )?;
    Ok(app)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> fastkafka::Result<()> {
    if let Some((first, second)) = common::addresses_from_args() {
        return common::run_until_ctrl_c(&fan_out_app(&brokers(&first), &brokers(&second))?).await;
    }
    let (cluster_1, cluster_2) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let app = fan_out_app(&cluster_1, &cluster_2)?;
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let mut on_1 = harness
        .watch::<TestMsg, _>("predictions", None, Json)
        .await?;
    let mut on_2 = harness
        .watch::<TestMsg, _>("predictions", Some(&cluster_2), Json)
        .await?;
    let running = app.start(harness.transport()).await?;
    harness.send("preprocessed_signals", None, &Json, &TestMsg::new("signal"))?;
    println!("server_1: {:?}", on_1.next().await?);
    println!("server_2: {:?}", on_2.next().await?);
    running.stop().await
}
