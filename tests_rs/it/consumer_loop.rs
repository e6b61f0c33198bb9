//! The consumer loop: batches, offsets stored only after the handler, clean stop.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fastkafka::{
    BatchHandler, ConsumerLoop, ConsumerLoopConfig, Error, MemoryBroker, OutgoingRecord, Record,
    Subscription, TopicPartition, Transport,
};
use tokio::sync::mpsc;

use super::{cluster_id, WAIT};

/// Reports each batch's size and fails on a value of "fail".
struct Recorder {
    batches: mpsc::UnboundedSender<Vec<String>>,
}

#[async_trait]
impl BatchHandler for Recorder {
    async fn handle(&mut self, records: &[Record]) -> fastkafka::Result<fastkafka::Handled> {
        let values = super::values(records);
        if values.iter().any(|v| v == "fail") {
            return Err(Error::Handler("asked to fail".into()));
        }
        self.batches.send(values).unwrap();
        Ok(fastkafka::Handled::all())
    }
}

#[tokio::test]
async fn batches_are_bounded_and_offsets_are_committed_on_stop() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    cluster
        .produce(
            "t",
            (0..250)
                .map(|i| OutgoingRecord::new(i.to_string()))
                .collect(),
        )
        .unwrap();
    let consumer = super::member_of_g(&cluster).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = ConsumerLoopConfig {
        max_poll_records: 100,
        ..Default::default()
    };
    let running = ConsumerLoop::spawn(consumer, Recorder { batches: tx }, config);
    let mut received = 0;
    while received < 250 {
        let batch = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(batch.len() <= 100);
        received += batch.len();
    }
    running.stop().await.unwrap();
    let committed = broker
        .memory_cluster(&cluster_id("a"))
        .committed_offset("g", &TopicPartition::new("t", 0));
    assert_eq!(committed, Some(250));
}

#[tokio::test]
async fn a_failing_handler_stops_the_loop_without_committing_its_batch() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let consumer = super::member_of_g(&cluster).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = ConsumerLoopConfig {
        max_poll_records: 1,
        ..Default::default()
    };
    let running = ConsumerLoop::spawn(consumer, Recorder { batches: tx }, config);
    cluster
        .produce(
            "t",
            vec![OutgoingRecord::new("ok"), OutgoingRecord::new("fail")],
        )
        .unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap(),
        ["ok"]
    );
    let outcome = tokio::time::timeout(WAIT, async {
        while !running.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(outcome.is_ok(), "the loop should end on its own");
    assert!(matches!(running.stop().await, Err(Error::Handler(m)) if m == "asked to fail"));
    let committed = broker
        .memory_cluster(&cluster_id("a"))
        .committed_offset("g", &TopicPartition::new("t", 0));
    assert_eq!(
        committed,
        Some(1),
        "the failed record stays uncommitted for a retry"
    );
}

/// Blocks inside the handler until released, to stop the loop mid-batch.
struct Gate {
    entered: mpsc::UnboundedSender<()>,
    release: Arc<tokio::sync::Notify>,
    finished: Arc<Mutex<usize>>,
}

#[async_trait]
impl BatchHandler for Gate {
    async fn handle(&mut self, records: &[Record]) -> fastkafka::Result<fastkafka::Handled> {
        self.entered.send(()).unwrap();
        self.release.notified().await;
        *self.finished.lock().unwrap() += records.len();
        Ok(fastkafka::Handled::all())
    }
}

#[tokio::test]
async fn stop_waits_for_the_batch_in_flight() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let consumer = super::member_of_g(&cluster).await;
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(Mutex::new(0));
    let gate = Gate {
        entered: entered_tx,
        release: release.clone(),
        finished: finished.clone(),
    };
    let running = ConsumerLoop::spawn(consumer, gate, ConsumerLoopConfig::default());
    cluster
        .produce("t", vec![OutgoingRecord::new("x")])
        .unwrap();
    tokio::time::timeout(WAIT, entered.recv())
        .await
        .unwrap()
        .unwrap();
    let stopping = tokio::spawn(running.stop());
    release.notify_one();
    tokio::time::timeout(WAIT, stopping)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(*finished.lock().unwrap(), 1);
    let committed = broker
        .memory_cluster(&cluster_id("a"))
        .committed_offset("g", &TopicPartition::new("t", 0));
    assert_eq!(committed, Some(1));
}

/// A consumer whose first polls fail, as a consumer of an unreachable cluster would.
#[derive(Debug)]
struct Flaky {
    failures_left: usize,
    polls: Arc<Mutex<usize>>,
    delivered: bool,
}

#[async_trait]
impl fastkafka::ClusterConsumer for Flaky {
    async fn poll(&mut self, _max: usize) -> fastkafka::Result<Vec<Record>> {
        *self.polls.lock().unwrap() += 1;
        if self.failures_left > 0 {
            self.failures_left -= 1;
            return Err(Error::Transport {
                cluster: "flaky".into(),
                message: "unreachable".into(),
            });
        }
        if self.delivered {
            return std::future::pending().await;
        }
        self.delivered = true;
        Ok(vec![Record {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            timestamp_type: Default::default(),
            key: None,
            value: Some("after the outage".into()),
            headers: Vec::new(),
        }])
    }
    fn store_offsets(&mut self, _: &[Record]) -> fastkafka::Result<()> {
        Ok(())
    }
    fn pause_at(&mut self, _: &TopicPartition, _: i64) -> fastkafka::Result<()> {
        Ok(())
    }
    fn resume(&mut self, _: &TopicPartition) -> fastkafka::Result<()> {
        Ok(())
    }
    async fn commit(&mut self) -> fastkafka::Result<()> {
        Ok(())
    }
    fn assignment(&self) -> Vec<TopicPartition> {
        Vec::new()
    }
    async fn close(self: Box<Self>) -> fastkafka::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn failing_polls_back_off_and_the_loop_recovers() {
    let polls = Arc::new(Mutex::new(0));
    let flaky = Flaky {
        failures_left: 3,
        polls: polls.clone(),
        delivered: false,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = tokio::time::Instant::now();
    let running = ConsumerLoop::spawn(
        Box::new(flaky),
        Recorder { batches: tx },
        Default::default(),
    );
    let batch = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch, ["after the outage"]);
    // Three failures, the success, and perhaps already the next (waiting) poll.
    assert!((4..=5).contains(&*polls.lock().unwrap()));
    // 100 + 200 + 400 ms of backoff (virtual time), not a busy loop.
    assert!(started.elapsed() >= std::time::Duration::from_millis(700));
    running.stop().await.unwrap();
}

/// Records the level and message of every event on this thread while it is installed.
#[derive(Clone, Default)]
struct LogLines(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = *event.metadata().level();
        self.0.lock().unwrap().push((level, message.0));
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_cluster_is_logged_once_per_state_change_not_per_retry() {
    use tracing_subscriber::layer::SubscriberExt;

    let lines = LogLines::default();
    let _installed =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(lines.clone()));
    let flaky = Flaky {
        failures_left: 5,
        polls: Arc::default(),
        delivered: false,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = ConsumerLoopConfig {
        name: "on_signals".into(),
        ..Default::default()
    };
    let running = ConsumerLoop::spawn(Box::new(flaky), Recorder { batches: tx }, config);
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    running.stop().await.unwrap();
    let shown: Vec<String> = lines
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, _)| *level <= tracing::Level::INFO)
        .map(|(_, message)| message.clone())
        .collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].starts_with("on_signals: poll failed; retrying with backoff"),
        "{shown:?}"
    );
    // Paused time: the backoffs were 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s.
    assert_eq!(
        shown[1],
        "on_signals: polling works again after 3.1s of failing (5 failed attempt(s))"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_consumer_commits_what_it_processed_when_the_interval_is_up() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let consumer = super::member_of_g(&cluster).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = ConsumerLoopConfig {
        max_poll_records: 100,
        commit_interval: Some(std::time::Duration::from_secs(5)),
        ..Default::default()
    };
    let running = ConsumerLoop::spawn(consumer, Recorder { batches: tx }, config);
    cluster
        .produce(
            "t",
            vec![OutgoingRecord::new("1"), OutgoingRecord::new("2")],
        )
        .unwrap();
    assert_eq!(rx.recv().await.unwrap(), ["1", "2"]);
    let committed = || {
        broker
            .memory_cluster(&cluster_id("a"))
            .committed_offset("g", &TopicPartition::new("t", 0))
    };
    // No more records arrive; the interval elapses (paused time advances when all is idle).
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(
        committed(),
        Some(2),
        "committed while idle, before any stop"
    );
    running.stop().await.unwrap();
}

/// Panics on its first batch.
struct Panicking;

#[async_trait]
impl BatchHandler for Panicking {
    async fn handle(&mut self, _: &[Record]) -> fastkafka::Result<fastkafka::Handled> {
        panic!("handler bug");
    }
}

#[tokio::test]
async fn a_loop_that_panics_reports_its_failure() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let running = ConsumerLoop::spawn(consumer, Panicking, ConsumerLoopConfig::default());
    cluster
        .produce("t", vec![OutgoingRecord::new("x")])
        .unwrap();
    let failure = tokio::time::timeout(WAIT, running.failure().wait())
        .await
        .expect("the failure is reported")
        .expect("the loop failed rather than stopping");
    assert!(
        matches!(&failure, Error::Panicked { what, message } if what == "consumer loop" && message == "handler bug"),
        "a panic is reported as one: {failure:?}"
    );
    assert!(running.is_finished());
    let stopped = running.stop().await.unwrap_err();
    assert_eq!(stopped.to_string(), failure.to_string());
}

#[tokio::test]
async fn a_stopped_loop_reports_no_failure() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    let consumer = cluster.subscribe(Subscription::new(["t"])).await.unwrap();
    let running = ConsumerLoop::spawn(consumer, Panicking, ConsumerLoopConfig::default());
    let failure = running.failure();
    running.stop().await.unwrap();
    assert!(failure.wait().await.is_none());
}

/// Leaves one output of every batch on its way forever, as a destination that is down would.
struct NeverAcknowledged {
    handled: mpsc::UnboundedSender<()>,
}

#[async_trait]
impl BatchHandler for NeverAcknowledged {
    async fn handle(&mut self, _: &[Record]) -> fastkafka::Result<fastkafka::Handled> {
        fastkafka::delivery::current()
            .expect("the loop tracks each batch")
            .sent(1);
        self.handled.send(()).unwrap();
        Ok(fastkafka::Handled::all())
    }
}

#[tokio::test]
async fn stop_waits_for_undelivered_outputs_only_for_the_grace_period_and_commits_nothing() {
    let broker = MemoryBroker::new();
    let cluster = broker.cluster(&cluster_id("a")).unwrap();
    cluster
        .produce("t", vec![OutgoingRecord::new("x")])
        .unwrap();
    let consumer = super::member_of_g(&cluster).await;
    let (handled, mut was_handled) = mpsc::unbounded_channel();
    let config = ConsumerLoopConfig {
        delivery_grace_at_stop: std::time::Duration::from_millis(50),
        ..Default::default()
    };
    let running = ConsumerLoop::spawn(consumer, NeverAcknowledged { handled }, config);
    tokio::time::timeout(WAIT, was_handled.recv())
        .await
        .expect("the batch was handled");
    tokio::time::timeout(WAIT, running.stop())
        .await
        .expect("stop is bounded by the grace period")
        .unwrap();
    let committed = broker
        .memory_cluster(&cluster_id("a"))
        .committed_offset("g", &TopicPartition::new("t", 0));
    assert_eq!(committed, None, "an undelivered batch is not committed");
}
