//! The runtime as an app's one registry: what is checked where a consumer is declared or
//! adjusted, the docs read from the registrations, and the test mirrors derived from them
//! (shared by Rust's `TestHarness` and Python's `Tester`).

use std::time::Duration;

use fastkafka::app::{App, Json, TestHarness};
use fastkafka::docs::{AppInfo, AsyncApiVersion};
use fastkafka::runtime::mirrors::{mirrors_of, MirrorRole};
use fastkafka::{Error, KafkaBrokers, MemoryBroker, RetryPolicy};
use serde_json::json;

use super::app_examples::forwarding::common::{brokers, TestMsg};

fn ok(_: TestMsg) -> std::future::Ready<Result<(), String>> {
    std::future::ready(Ok(()))
}

#[tokio::test]
async fn a_dead_letter_cluster_lacking_the_apps_environment_fails_the_start_naming_it() {
    let mut app = App::new(brokers("server_1:9092"));
    let elsewhere =
        KafkaBrokers::from_value(&json!({"staging": {"url": "s", "port": 9092}})).unwrap();
    app.consumer("signals", None, Json, ok)
        .unwrap()
        .dead_letter_on("signals_dlt", &elsewhere);
    let broker = MemoryBroker::new();
    let error = app.start(std::sync::Arc::new(broker)).await.unwrap_err();
    let Error::Config(message) = &error else {
        panic!("a configuration error, got {error:?}")
    };
    assert!(
        message.contains("consumer of 'signals'") && message.contains("dead-letter brokers"),
        "{message}"
    );
}

#[tokio::test]
async fn a_retry_policy_set_after_registering_is_checked_at_the_start() {
    let mut app = App::new(brokers("server_1:9092"));
    app.consumer("signals", None, Json, ok)
        .unwrap()
        .retry(RetryPolicy {
            attempts: 0,
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        });
    let error = app
        .start(std::sync::Arc::new(MemoryBroker::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Config(m) if m.contains("retry attempts must be >= 1")),
        "{error:?}"
    );
}

#[test]
fn mirrors_are_one_per_role_cluster_and_topic_named_as_fastkafkas_tester_names_them() {
    let (one, two) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let mut app = App::new(one.clone());
    app.consumer("pre.signals", None, Json, ok).unwrap();
    app.consumer("pre.signals", None, Json, ok).unwrap();
    app.consumer("pre.signals", Some(&two), Json, ok).unwrap();
    app.producer::<TestMsg>("predictions", Some(&two), Json)
        .unwrap();
    let mirrors = mirrors_of(&[app.runtime()]).unwrap();
    let summary: Vec<_> = mirrors
        .iter()
        .map(|m| {
            (
                m.role,
                m.name.as_str(),
                m.cluster.bootstrap_servers(),
                m.serves.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (MirrorRole::Reads, "on_predictions", "server_2:9092", 1),
            (MirrorRole::Feeds, "to_pre_signals", "server_1:9092", 2),
            (MirrorRole::Feeds, "to_pre_signals", "server_2:9092", 1),
        ]
    );
}

#[tokio::test]
async fn the_harness_feeds_only_what_the_app_consumes() {
    let app = super::app_examples::forwarding::forwarding_app(
        &brokers("server_1:9092"),
        &brokers("server_2:9092"),
    )
    .unwrap();
    let harness = TestHarness::new(&app, MemoryBroker::new());
    let error = harness
        .send("predictions", None, &Json, &TestMsg::new("x"))
        .unwrap_err();
    assert!(
        matches!(&error, Error::Config(m) if m.contains("no consumer of the app reads 'predictions'")),
        "{error:?}"
    );
}

#[test]
fn the_docs_are_read_from_the_registrations() {
    let (one, two) = (brokers("server_1:9092"), brokers("server_2:9092"));
    let mut app = App::new(one);
    app.consumer("signals", None, Json, ok).unwrap();
    app.producer::<TestMsg>("predictions", Some(&two), Json)
        .unwrap();
    let spec = app
        .docs(AppInfo::default())
        .unwrap()
        .asyncapi(AsyncApiVersion::V3_0);
    let channels = spec["channels"].as_object().unwrap();
    let mut ids: Vec<&str> = channels.keys().map(String::as_str).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["predictions_cluster_2", "signals"]);
}
