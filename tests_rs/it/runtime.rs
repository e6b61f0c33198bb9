//! The one app runtime: what both APIs rely on from it, tested on the untyped surface the
//! Python package uses (registrations with batch handlers, options in FastKafka's names).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fastkafka::runtime::{
    AbandonHook, ClusterChoice, ConsumerRegistration, ConsumerSettings, Described, HandOver,
    Options, Runtime,
};
use fastkafka::{BatchHandler, Error, KafkaBrokers, MemoryBroker, Record, Transport};
use serde_json::json;
use tokio::sync::Notify;

use super::WAIT;

fn localhost() -> KafkaBrokers {
    KafkaBrokers::localhost()
}

fn options(value: serde_json::Value) -> Options {
    serde_json::from_value(value).unwrap()
}

/// Waits in its batch until cancelled by the abandon hook.
struct Stuck {
    started: Arc<Notify>,
    abandoned: Arc<Notify>,
}

#[async_trait]
impl BatchHandler for Stuck {
    async fn handle(&mut self, _records: &[Record]) -> fastkafka::Result<fastkafka::Handled> {
        self.started.notify_one();
        self.abandoned.notified().await;
        Err(Error::Handler("batch abandoned at stop".into()))
    }
}

#[tokio::test]
async fn a_batch_stuck_at_stop_is_abandoned_at_half_the_stop_timeout() {
    let (started, abandoned) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let waited = Arc::new(Mutex::new(None));
    let mut runtime = Runtime::new(localhost());
    runtime.set_stop_timeout(Duration::from_millis(50));
    let (handler_started, handler_abandoned) = (started.clone(), abandoned.clone());
    let (hook_abandoned, hook_waited) = (abandoned.clone(), waited.clone());
    runtime
        .add_consumer(ConsumerRegistration {
            name: "on_jobs".into(),
            topic: "jobs".into(),
            cluster: ClusterChoice::App,
            settings: ConsumerSettings::default(),
            handler: Arc::new(move || {
                Ok(Box::new(Stuck {
                    started: handler_started.clone(),
                    abandoned: handler_abandoned.clone(),
                }) as Box<dyn BatchHandler>)
            }),
            on_abandon: Some(Arc::new(move |after: Duration| {
                *hook_waited.lock().unwrap() = Some(after);
                hook_abandoned.notify_one();
            }) as AbandonHook),
            hand_over: HandOver::UpToMaxPollRecords,
            described: Described::default(),
        })
        .unwrap();
    let broker = MemoryBroker::new();
    let running = runtime.start(Arc::new(broker.clone())).await.unwrap();
    broker
        .cluster(&runtime.cluster_id(&ClusterChoice::App).unwrap())
        .unwrap()
        .produce("jobs", vec![fastkafka::OutgoingRecord::new(&b"{}"[..])])
        .unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .expect("the batch started");
    let stopped = tokio::time::timeout(WAIT, running.stop())
        .await
        .expect("stop returns once the batch is abandoned");
    assert!(
        matches!(&stopped, Err(Error::Handler(m)) if m.contains("abandoned")),
        "{stopped:?}"
    );
    // Half of the stop timeout: the rest is for commits and the producers' flush.
    assert_eq!(*waited.lock().unwrap(), Some(Duration::from_millis(25)));
}

#[tokio::test]
async fn producers_sharing_a_cluster_must_agree_on_its_options_and_values_stay_secret() {
    let mut runtime = Runtime::new(localhost());
    for (name, password) in [("to_a", "hunter2"), ("to_b", "swordfish")] {
        let settings = runtime
            .producer_settings(&options(json!({"sasl_plain_password": password})), name)
            .unwrap();
        runtime
            .add_producer(
                name,
                "t",
                ClusterChoice::App,
                settings,
                Described::default(),
            )
            .unwrap();
    }
    let error = runtime
        .start(Arc::new(MemoryBroker::new()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("'to_a' and 'to_b'") && error.contains("sasl.password"),
        "{error}"
    );
    assert!(!error.contains("hunter2") && !error.contains("swordfish"));
}

#[tokio::test]
async fn app_options_reach_consumers_under_their_own_and_a_consumer_overrides_them() {
    let mut runtime = Runtime::new(localhost());
    runtime
        .set_client_options(options(
            json!({"client_id": "svc", "linger_ms": 5, "max_poll_records": 7}),
        ))
        .unwrap();
    let settings = runtime
        .consumer_settings(&options(json!({"client_id": "mine"})), "consumes()")
        .unwrap();
    assert_eq!(settings.properties["client.id"], "mine");
    assert_eq!(settings.max_poll_records, 7);
    assert!(!settings.properties.contains_key("linger.ms"));
    let error = runtime
        .consumer_settings(&options(json!({"linger_ms": 5})), "consumes()")
        .unwrap_err();
    assert!(
        error.to_string().contains("linger_ms (in consumes())"),
        "{error}"
    );
}

/// Counts the records it gets.
struct Counting(Arc<AtomicUsize>, Arc<Notify>);

#[async_trait]
impl BatchHandler for Counting {
    async fn handle(&mut self, records: &[Record]) -> fastkafka::Result<fastkafka::Handled> {
        self.0.fetch_add(records.len(), Ordering::SeqCst);
        self.1.notify_one();
        Ok(fastkafka::Handled::all())
    }
}

#[tokio::test]
async fn a_fixed_cluster_ignores_the_environment_as_a_test_mirror_must() {
    let brokers: KafkaBrokers = serde_json::from_value(json!({
        "development": {"url": "dev", "port": 9092},
        "production": {"url": "prod", "port": 9092},
    }))
    .unwrap();
    let mut runtime = Runtime::new(brokers);
    runtime.set_environment("production").unwrap();
    let dev = fastkafka::ClusterId::from_addresses(["dev:9092"]);
    let (count, arrived) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let (handler_count, handler_arrived) = (count.clone(), arrived.clone());
    runtime
        .add_consumer(ConsumerRegistration {
            name: "on_x".into(),
            topic: "x".into(),
            cluster: ClusterChoice::Fixed(dev.clone()),
            settings: ConsumerSettings::default(),
            handler: Arc::new(move || {
                Ok(
                    Box::new(Counting(handler_count.clone(), handler_arrived.clone()))
                        as Box<dyn BatchHandler>,
                )
            }),
            on_abandon: None,
            hand_over: HandOver::UpToMaxPollRecords,
            described: Described::default(),
        })
        .unwrap();
    let broker = MemoryBroker::new();
    let running = runtime.start(Arc::new(broker.clone())).await.unwrap();
    broker
        .cluster(&dev)
        .unwrap()
        .produce("x", vec![fastkafka::OutgoingRecord::new(&b"1"[..])])
        .unwrap();
    tokio::time::timeout(WAIT, arrived.notified())
        .await
        .expect("the record on the fixed cluster arrived");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    running.stop().await.unwrap();
}

/// The in-memory broker, except that subscribing to `stuck` never finishes (a group that never
/// settles): the seam's test double for a start that cannot complete.
#[derive(Debug)]
struct StuckSubscriptions(MemoryBroker);

#[derive(Debug)]
struct StuckCluster(Arc<dyn fastkafka::Cluster>);

impl Transport for StuckSubscriptions {
    fn cluster_with(
        &self,
        id: &fastkafka::ClusterId,
        producer: &fastkafka::ClientProperties,
    ) -> fastkafka::Result<Arc<dyn fastkafka::Cluster>> {
        Ok(Arc::new(StuckCluster(self.0.cluster_with(id, producer)?)))
    }
}

#[async_trait]
impl fastkafka::Cluster for StuckCluster {
    fn id(&self) -> &fastkafka::ClusterId {
        self.0.id()
    }

    fn produce(
        &self,
        topic: &str,
        records: Vec<fastkafka::OutgoingRecord>,
    ) -> fastkafka::Result<()> {
        self.0.produce(topic, records)
    }

    fn try_produce_tracked(
        &self,
        topic: &str,
        records: Vec<fastkafka::OutgoingRecord>,
        tracker: Option<&Arc<fastkafka::delivery::DeliveryTracker>>,
    ) -> fastkafka::Result<Vec<fastkafka::OutgoingRecord>> {
        self.0.try_produce_tracked(topic, records, tracker)
    }

    async fn flush(&self) -> fastkafka::Result<()> {
        self.0.flush().await
    }

    async fn subscribe(
        &self,
        subscription: fastkafka::Subscription,
    ) -> fastkafka::Result<Box<dyn fastkafka::ClusterConsumer>> {
        if subscription.topics == ["stuck"] {
            std::future::pending::<()>().await;
        }
        self.0.subscribe(subscription).await
    }
}

#[tokio::test]
async fn the_start_timeout_bounds_the_whole_start_and_names_the_consumer_it_waited_for() {
    let mut runtime = Runtime::new(localhost());
    runtime.set_start_timeout(Duration::from_millis(200));
    for (name, topic) in [("on_jobs", "jobs"), ("on_stuck", "stuck")] {
        runtime
            .add_consumer(ConsumerRegistration {
                name: name.into(),
                topic: topic.into(),
                cluster: ClusterChoice::App,
                settings: ConsumerSettings::default(),
                handler: Arc::new(|| {
                    Ok(Box::new(Counting(Arc::default(), Arc::default())) as Box<dyn BatchHandler>)
                }),
                on_abandon: None,
                hand_over: HandOver::UpToMaxPollRecords,
                described: Described::default(),
            })
            .unwrap();
    }
    let started = tokio::time::timeout(
        WAIT,
        runtime.start(Arc::new(StuckSubscriptions(MemoryBroker::new()))),
    )
    .await
    .expect("the start ends by itself");
    let error = started.expect_err("a subscription that never finishes fails the start");
    assert!(
        error
            .to_string()
            .contains("consumer 'on_stuck' was not subscribed within the start timeout (200ms)"),
        "{error}"
    );
}
