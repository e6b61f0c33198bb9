//! What the Rust examples share: the guide's message, broker configuration from `host:port`,
//! and how each example picks the in-memory broker or real clusters.

use std::sync::Arc;

use fastkafka::{KafkaBrokers, Transport};
use serde::{Deserialize, Serialize};

/// The guide's message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestMsg {
    /// Its text.
    pub msg: String,
}

impl TestMsg {
    /// A message with `text`.
    pub fn new(text: &str) -> Self {
        Self {
            msg: text.to_owned(),
        }
    }
}

/// `{"localhost": {"url": host, "port": port}}` for `host:port`.
pub fn brokers(address: &str) -> KafkaBrokers {
    let (url, port) = address.split_once(':').expect("host:port");
    serde_json::from_value(serde_json::json!({"localhost": {"url": url, "port": port}}))
        .expect("a valid broker")
}

/// The two clusters' addresses given on the command line, if any.
#[allow(dead_code)]
pub fn addresses_from_args() -> Option<(String, String)> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.as_slice() {
        [first, second] => Some((first.clone(), second.clone())),
        _ => None,
    }
}

/// Real Kafka, when built with the `kafka` feature.
#[allow(dead_code)]
pub fn kafka_transport() -> fastkafka::Result<Arc<dyn Transport>> {
    #[cfg(feature = "kafka")]
    {
        Ok(Arc::new(fastkafka::transport::kafka::KafkaTransport::new(
            Default::default(),
        )?))
    }
    #[cfg(not(feature = "kafka"))]
    {
        Err(fastkafka::Error::Config(
            "real clusters need the kafka feature: cargo run --features kafka --example ...".into(),
        ))
    }
}

/// Runs `app` on real clusters until Ctrl-C.
#[allow(dead_code)]
pub async fn run_until_ctrl_c(app: &fastkafka::app::App) -> fastkafka::Result<()> {
    println!("running on real clusters; Ctrl-C stops");
    app.run_until(kafka_transport()?, async {
        tokio::signal::ctrl_c().await.ok();
    })
    .await
}
