//! [`KafkaCluster`]: one real cluster and its one producer client, shared by every producer of
//! the app that sends there.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};

use super::consumer::KafkaConsumer;
use super::enqueue::{enqueue_record, is_queue_full};
use super::native;
use super::oauth::TokenProvider;
use super::redirect::Redirect;
use super::reports::{DeliveryReporter, ReportedProducer};
use super::send_lane::{LaneClient, SendLane};
use super::{client_config, config_error, BLOCKING_CALL_TIMEOUT};
use crate::config::ClusterId;
use crate::delivery::DeliveryTracker;
use crate::error::{Error, Result};
use crate::metrics::ClusterProducerMetrics;
use crate::record::OutgoingRecord;
use crate::transport::undelivered::Undelivered;
use crate::transport::{
    ClientProperties, Cluster, ClusterConsumer, DropOffThread, Reachability, Subscription,
    QUEUE_FULL_TIMEOUT,
};

/// One real cluster and its producer client.
pub struct KafkaCluster {
    id: ClusterId,
    properties: ClientProperties,
    /// Closed off the dropping thread: an app's stop returns once everything is flushed.
    producer: DropOffThread<ReportedProducer>,
    undelivered: Arc<Undelivered>,
    /// The last authentication or TLS failure librdkafka reported: the start fails with it
    /// at once instead of waiting out its timeout.
    security_failure: Arc<Mutex<Option<String>>>,
    /// The client's `security.protocol`, for errors.
    security_protocol: String,
    /// Whether a start's check found the cluster answering (see
    /// [`native::answered_since_connecting`]).
    checked: AtomicBool,
    /// Where records sent outside a consumer's batch report; nobody waits for it.
    untracked: Arc<DeliveryTracker>,
    /// What it was sent, per topic ([`crate::metrics`]; the reporter counts the answers).
    producer_metrics: Option<Arc<ClusterProducerMetrics>>,
    /// Where records wait for the client when a thread of their own hands them over.
    lane: Option<Arc<SendLane>>,
    /// Whether it answers, as all of its clients (producer and consumers) report it.
    reachability: Arc<Reachability>,
    /// Where its clients get OAUTHBEARER tokens.
    token_provider: Option<Arc<dyn TokenProvider>>,
}

impl KafkaCluster {
    /// `with_lane`: records are handed to the client from a [`SendLane`]'s thread.
    pub(super) fn connect(
        id: &ClusterId,
        properties: &ClientProperties,
        producer_properties: &ClientProperties,
        with_lane: bool,
        token_provider: Option<Arc<dyn TokenProvider>>,
    ) -> Result<Self> {
        let mut config = client_config(id, properties);
        // librdkafka's own default (`consistent_random`, CRC32) puts a key on another
        // partition than the Java client, aiokafka, FastKafka and our in-memory broker do;
        // Java's murmur2 keeps keyed records where every other client expects them.
        config.set("partitioner", "murmur2_random");
        for (name, value) in producer_properties {
            config.set(name, value);
        }
        let undelivered = Arc::new(Undelivered::new(id));
        let security_failure = Arc::new(Mutex::new(None));
        let producer_metrics = ClusterProducerMetrics::of(id.bootstrap_servers());
        let reachability = Arc::new(Reachability::default());
        let reporter = DeliveryReporter {
            cluster: id.clone(),
            undelivered: undelivered.clone(),
            security_failure: security_failure.clone(),
            metrics: producer_metrics.clone(),
            reachability: reachability.clone(),
            token_provider: token_provider.clone(),
            redirect: Redirect::default(),
        };
        let client: BaseProducer<DeliveryReporter> = config
            .create_with_context(reporter)
            .map_err(|e| config_error(id, "producer", &config, e))?;
        let producer = ReportedProducer::start(client).map_err(|error| Error::Thread {
            what: format!("the thread that serves its delivery reports of cluster {id}'s producer"),
            source: Arc::new(error),
        })?;
        let lane = if with_lane {
            let client = LaneClient {
                cluster: id.clone(),
                producer: producer.clone(),
                undelivered: undelivered.clone(),
                metrics: producer_metrics.clone(),
            };
            let setting = |name: &str, default: usize| {
                config
                    .get(name)
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(default)
            };
            let lane = SendLane::start(
                client,
                setting("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES),
                setting("queue.buffering.max.messages", DEFAULT_QUEUE_MESSAGES),
            )
            .map_err(|error| Error::Thread {
                what: format!("the thread that sends its records of cluster {id}'s producer"),
                source: Arc::new(error),
            })?;
            Some(Arc::new(lane))
        } else {
            None
        };
        Ok(Self {
            lane,
            id: id.clone(),
            properties: properties.clone(),
            producer: DropOffThread::new(producer),
            undelivered,
            security_failure,
            security_protocol: producer_properties
                .get("security.protocol")
                .or_else(|| properties.get("security.protocol"))
                .map_or_else(|| "plaintext".to_owned(), |p| p.to_lowercase()),
            checked: AtomicBool::new(false),
            untracked: DeliveryTracker::new(),
            producer_metrics,
            reachability,
            token_provider,
        })
    }

    /// Hands one record to the client, counted in `tracker` (settled there if refused).
    fn send_one(
        &self,
        topic: &str,
        record: &OutgoingRecord,
        tracker: &Arc<DeliveryTracker>,
    ) -> std::result::Result<(), KafkaError> {
        // Counted before the client has it: its delivery report may come at once.
        tracker.sent(1);
        enqueue_record(&self.producer, topic, record, tracker.clone()).inspect_err(|_| {
            tracker.unsent();
        })
    }

    fn count_sent(&self, topic: &str, count: usize) {
        if let (Some(metrics), true) = (&self.producer_metrics, count > 0) {
            metrics.sent(topic, count as u64);
        }
    }

    /// The client (or its lane) refused a record for `topic`.
    fn refused(&self, topic: &str, error: KafkaError) -> Error {
        let message = format!("cannot send to '{topic}': {error}");
        match error {
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) => {
                Error::RecordTooLarge {
                    cluster: self.id.to_string(),
                    message,
                }
            }
            _ => self.transport_error(message),
        }
    }

    fn transport_error(&self, message: impl fmt::Display) -> Error {
        Error::Transport {
            cluster: self.id.to_string(),
            message: message.to_string(),
        }
    }
}

impl fmt::Debug for KafkaCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaCluster")
            .field("id", &self.id)
            .finish()
    }
}

#[async_trait]
impl Cluster for KafkaCluster {
    fn id(&self) -> &ClusterId {
        &self.id
    }

    fn produce(&self, topic: &str, mut records: Vec<OutgoingRecord>) -> Result<()> {
        // A full queue is backpressure: wait (blocking this thread) for the client to drain.
        let mut waiting_since = None;
        loop {
            records = self.try_produce(topic, records)?;
            if records.is_empty() {
                return Ok(());
            }
            let waited = waiting_since
                .get_or_insert_with(std::time::Instant::now)
                .elapsed();
            if waited > QUEUE_FULL_TIMEOUT {
                return Err(self.transport_error(format!(
                    "cannot send to '{topic}': the producer queue stayed full for {QUEUE_FULL_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn try_produce_tracked(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
        tracker: Option<&Arc<DeliveryTracker>>,
    ) -> Result<Vec<OutgoingRecord>> {
        // Untracked records report to the cluster's own tracker, which nobody waits for.
        let tracker = tracker.unwrap_or(&self.untracked);
        if let Some(lane) = &self.lane {
            return lane
                .take(topic, records, tracker)
                .map_err(|error| self.refused(topic, error));
        }
        for (index, record) in records.iter().enumerate() {
            if let Err(error) = self.send_one(topic, record, tracker) {
                self.count_sent(topic, index);
                if is_queue_full(&error) {
                    return Ok(records.into_iter().skip(index).collect());
                }
                return Err(self.refused(topic, error));
            }
        }
        self.count_sent(topic, records.len());
        Ok(Vec::new())
    }

    fn try_produce_one(
        &self,
        topic: &str,
        record: OutgoingRecord,
        tracker: Option<&Arc<DeliveryTracker>>,
    ) -> Result<Option<OutgoingRecord>> {
        let tracker = tracker.unwrap_or(&self.untracked);
        if let Some(lane) = &self.lane {
            return lane
                .take_one(topic, record, tracker)
                .map_err(|error| self.refused(topic, error));
        }
        match self.send_one(topic, &record, tracker) {
            Ok(()) => {
                self.count_sent(topic, 1);
                Ok(None)
            }
            Err(error) if is_queue_full(&error) => Ok(Some(record)),
            Err(error) => Err(self.refused(topic, error)),
        }
    }

    fn delivery_failures(&self) -> u64 {
        self.undelivered.total()
    }

    async fn check_reachable(&self, timeout: Duration) -> Result<()> {
        // Short metadata requests until the deadline, so that an authentication or TLS
        // failure (which librdkafka reports to the client context, and retries forever)
        // fails the start at once, saying so.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut first_attempt = true;
        loop {
            let attempt = CHECK_ATTEMPT.min(deadline - tokio::time::Instant::now());
            let producer = (*self.producer).clone();
            let answer_since_connecting = first_attempt && !self.checked.load(Ordering::Relaxed);
            first_attempt = false;
            let fetched = tokio::task::spawn_blocking(move || {
                if answer_since_connecting {
                    native::answered_since_connecting(producer.client(), attempt)
                } else {
                    producer.client().fetch_metadata(None, attempt).map(drop)
                }
            })
            .await
            .map_err(|e| self.transport_error(e))?;
            let error = match fetched {
                Ok(()) => {
                    self.checked.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err(error) => error,
            };
            if let Some(failure) = self
                .security_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
            {
                return Err(self.transport_error(format!(
                    "the cluster refused the connection's security (security.protocol={}): \
                     {failure}",
                    self.security_protocol
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                let hint = match self.security_protocol.as_str() {
                    "plaintext" => String::new(),
                    protocol => format!(
                        " (security.protocol={protocol}: a broker that drops connections it \
                         cannot authenticate, e.g. on a wrong password or certificate, looks \
                         like this too)"
                    ),
                };
                return Err(self.transport_error(format!(
                    "no answer to a metadata request within {:.1} s: {error}{hint}",
                    timeout.as_secs_f64()
                )));
            }
        }
    }

    async fn flush(&self) -> Result<()> {
        let (producer, lane) = ((*self.producer).clone(), self.lane.clone());
        // Whatever a lane holds goes to the client first, then the client's queue is flushed.
        let flushed = tokio::task::spawn_blocking(move || {
            let drained = lane.is_none_or(|lane| lane.drain(BLOCKING_CALL_TIMEOUT));
            drained.then(|| native::flush_until_delivered(producer.client()))
        })
        .await
        .map_err(|e| self.transport_error(e))?;
        match flushed {
            Some(flushed) => {
                flushed.map_err(|e| self.transport_error(format!("flush failed: {e}")))
            }
            None => Err(self.transport_error(format!(
                "flush failed: records still waiting for room in the producer queue after \
                 {BLOCKING_CALL_TIMEOUT:?}"
            ))),
        }
    }

    async fn subscribe(&self, subscription: Subscription) -> Result<Box<dyn ClusterConsumer>> {
        KafkaConsumer::subscribe(
            &self.id,
            &self.properties,
            subscription,
            self.reachability.clone(),
            self.token_provider.clone(),
        )
        .await
    }

    fn unreachable_for(&self) -> Option<Duration> {
        self.reachability.down_for()
    }

    fn redirect_undelivered(&self, to: Arc<dyn Cluster>) -> usize {
        if let Some(lane) = &self.lane {
            lane.drain(LANE_DRAIN); // into the client's queue, which the purge empties
        }
        self.producer.redirect_undelivered(to)
    }

    async fn recheck(&self) {
        if self.reachability.down_for().is_none() {
            return;
        }
        let producer = (*self.producer).clone();
        let answered = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, CHECK_ATTEMPT)
                .is_ok()
        })
        .await
        .unwrap_or(false);
        if answered {
            if let Some(down_for) = self.reachability.answered() {
                tracing::info!(
                    cluster = %self.id,
                    "the cluster answers again, after {:.1} s with every broker down",
                    down_for.as_secs_f64()
                );
            }
        }
    }
}

/// How long a redirect waits for the lane to hand its records to the client.
const LANE_DRAIN: Duration = Duration::from_millis(100);

/// How long one metadata request of [`KafkaCluster::check_reachable`] may take.
const CHECK_ATTEMPT: Duration = Duration::from_millis(500);

/// librdkafka's defaults of `message.max.bytes` and `queue.buffering.max.messages`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
const DEFAULT_QUEUE_MESSAGES: usize = 100_000;
