//! AsyncAPI docs of a Rust-native multi-cluster app: one server per cluster and environment,
//! channels bound to their cluster's servers, schemas from schemars.

use fastkafka::app::{App, DocumentedJson, Json};
use fastkafka::docs::{to_yaml, AppInfo, AsyncApiVersion};
use fastkafka::KafkaBrokers;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A signal.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Signal {
    /// What was measured.
    msg: String,
}

fn brokers(prefix: &str) -> KafkaBrokers {
    serde_json::from_value(json!({
        "development": {"url": format!("{prefix}.dev"), "port": 9092},
        "production": {"url": format!("{prefix}.prod"), "port": 9092,
                       "protocol": "kafka-secure", "security": {"type": "plain"}},
    }))
    .unwrap()
}

fn guide_app() -> App {
    let (one, two) = (brokers("one"), brokers("two"));
    let mut app = App::new(one.clone());
    app.producer::<Signal>("predictions", Some(&two), DocumentedJson)
        .unwrap();
    app.consumer(
        "preprocessed_signals",
        None,
        DocumentedJson,
        |_: Signal| async { Ok::<(), String>(()) },
    )
    .unwrap();
    app.consumer(
        "preprocessed_signals",
        Some(&two),
        Json,
        |_: Signal| async { Ok::<(), String>(()) },
    )
    .unwrap();
    app
}

#[test]
fn the_spec_has_a_server_per_cluster_and_environment_and_channels_bound_to_them() {
    let info = AppInfo {
        title: "Signals".into(),
        ..AppInfo::default()
    };
    let spec = guide_app()
        .docs(info)
        .unwrap()
        .asyncapi(AsyncApiVersion::V2_6);
    let servers = spec["servers"].as_object().unwrap();
    let names: Vec<&str> = servers.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "development",
            "development_cluster_2",
            "production",
            "production_cluster_2"
        ]
    );
    // FastKafka's 2.x shape: the host in `url`, the port as a string variable's default.
    assert_eq!(servers["production_cluster_2"]["url"], "two.prod");
    assert_eq!(
        servers["production_cluster_2"]["variables"]["port"]["default"],
        "9092"
    );
    assert_eq!(servers["production"]["protocol"], "kafka-secure");
    assert_eq!(
        spec["components"]["securitySchemes"]["production_security"]["type"],
        "plain"
    );
    let channels = &spec["channels"];
    assert_eq!(
        channels["preprocessed_signals"]["servers"],
        json!(["development", "production"])
    );
    assert_eq!(
        channels["preprocessed_signals_cluster_2"]["bindings"]["kafka"]["topic"],
        "preprocessed_signals"
    );
    assert_eq!(
        channels["predictions_cluster_2"]["publish"]["message"]["$ref"],
        "#/components/messages/Signal"
    );
    assert_eq!(
        spec["components"]["schemas"]["Signal"]["properties"]["msg"]["description"],
        "What was measured."
    );
    let yaml = to_yaml(&spec);
    assert!(yaml.starts_with("asyncapi: \"2.6.0\"\n"), "{yaml}");
}

#[test]
fn version_3_names_operations_and_refers_to_servers() {
    let spec = guide_app()
        .docs(AppInfo::default())
        .unwrap()
        .asyncapi(AsyncApiVersion::V3_0);
    assert_eq!(spec["asyncapi"], "3.0.0");
    let operation = &spec["operations"]["producer_to__predictions_"];
    assert_eq!(operation["action"], "send");
    assert_eq!(
        operation["channel"]["$ref"],
        "#/channels/predictions_cluster_2"
    );
    assert_eq!(
        spec["channels"]["predictions_cluster_2"]["servers"][0]["$ref"],
        "#/servers/development_cluster_2"
    );
    assert_eq!(
        spec["channels"]["predictions_cluster_2"]["address"],
        "predictions"
    );
}

#[test]
fn the_page_shows_both_clusters_and_every_channel_without_scripts() {
    let page = guide_app().docs(AppInfo::default()).unwrap().html();
    assert!(page.contains("Cluster 1") && page.contains("Cluster 2"));
    assert_eq!(page.matches("<section class=\"channel\"").count(), 3);
    assert!(page.contains("What was measured."));
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
}

#[test]
fn a_standby_is_a_server_of_its_own_bound_to_its_clusters_channels() {
    let brokers: KafkaBrokers = serde_json::from_value(json!({"production": {
        "url": "eu-west", "port": 9092, "standby": {"url": "eu-central", "port": 9093}}}))
    .unwrap();
    let mut app = App::new(brokers);
    app.consumer("signals", None, Json, |_: Signal| async {
        Ok::<(), String>(())
    })
    .unwrap();
    let spec = app
        .docs(AppInfo::default())
        .unwrap()
        .asyncapi(AsyncApiVersion::V2_6);
    let standby = &spec["servers"]["production_standby"];
    assert_eq!(standby["url"], "eu-central");
    assert_eq!(standby["variables"]["port"]["default"], "9093");
    assert!(
        standby["description"]
            .as_str()
            .unwrap()
            .starts_with("standby of production"),
        "{standby}"
    );
    assert_eq!(
        spec["channels"]["signals"]["servers"],
        json!(["production", "production_standby"])
    );
}
