//! The fault suite's forwarding app written with the Rust API: the twin of
//! `scripts/faults/fault_app.py`, run by `make faults` as the handler shape `rust`.
//!
//! Consumes `in` on FAULTS_SOURCE (host:port) in group `forwarders`, sends each item to `out` on
//! FAULTS_DEST with the same key, retries a failing item 3 times (50 ms doubling to 1 s) and then
//! dead-letters it to `in_dlt` (on FAULTS_DLT's cluster when set). FAULTS_ITEM_DELAY seconds are
//! spent per item, FAULTS_FLAKY=1 makes every 97th item fail twice first. Prints `app started`
//! once consuming, and runs until SIGTERM or Ctrl-C, then stops cleanly.
//!
//! `cargo run --release --features kafka --example fault_app`

#[path = "common/mod.rs"]
pub mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::brokers;
use fastkafka::app::{App, Json, Metadata};
use fastkafka::transport::kafka::KafkaTransport;
use fastkafka::RetryPolicy;
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{signal, SignalKind};

/// What the fault suite forwards (`scripts/faults/items.py`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    id: i64,
    payload: String,
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

#[tokio::main]
async fn main() -> fastkafka::Result<()> {
    let source = brokers(&variable("FAULTS_SOURCE").expect("FAULTS_SOURCE is host:port"));
    let dest = brokers(&variable("FAULTS_DEST").expect("FAULTS_DEST is host:port"));
    let item_delay = Duration::from_secs_f64(
        variable("FAULTS_ITEM_DELAY").map_or(0.0, |delay| delay.parse().expect("seconds")),
    );
    let flaky = variable("FAULTS_FLAKY").as_deref() == Some("1");

    let mut app = App::new(source).stop_timeout(Duration::from_secs(20));
    let out = app.producer::<Item>("out", Some(&dest), Json)?;
    let failed_attempts = Arc::new(Mutex::new(HashMap::<i64, u32>::new()));
    let mut options =
        app.consumer_with_metadata("in", None, Json, move |item: Item, meta: Metadata| {
            let (out, failed_attempts) = (out.clone(), failed_attempts.clone());
            async move {
                if flaky && item.id % 97 == 0 {
                    let mut failed = failed_attempts.lock().expect("not poisoned");
                    let attempts = failed.entry(item.id).or_default();
                    *attempts += 1;
                    if *attempts <= 2 {
                        return Err(fastkafka::Error::Handler(format!(
                            "item {}: the downstream service timed out",
                            item.id
                        )));
                    }
                }
                if !item_delay.is_zero() {
                    tokio::time::sleep(item_delay).await; // the work a real handler would do
                }
                out.send_keyed(meta.key.unwrap_or_default(), &item).await
            }
        })?;
    options
        .group_id("forwarders")
        .commit_interval(Some(Duration::from_secs(1)))
        .retry(RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        });
    match variable("FAULTS_DLT") {
        Some(dlt) => options.dead_letter_on("in_dlt", &brokers(&dlt)),
        None => options.dead_letter("in_dlt"),
    };

    // The Python fault app's settings: a quick fetch and session, and deliveries to a dead
    // destination failing after 3 s (librdkafka's default: 300 s) so that a scenario sees
    // failed deliveries and redeliveries within its run.
    let properties = [
        ("fetch.wait.max.ms", "20"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
        ("message.timeout.ms", "3000"),
    ];
    let transport = KafkaTransport::new(
        properties
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
    )?;
    let running = app.start(Arc::new(transport)).await?;
    println!("app started");
    let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let failure = tokio::select! {
        _ = terminate.recv() => None,
        _ = tokio::signal::ctrl_c() => None,
        failure = running.wait_for_failure() => Some(failure),
    };
    running.stop().await?;
    println!("app stopped");
    failure.map_or(Ok(()), Err)
}
