//! [`ReportedProducer`]: a cluster's producer client and the thread that serves its delivery
//! reports (and its errors and logs), sleeping while there is nothing to serve.
//!
//! rust-rdkafka's `ThreadedProducer` has such a thread, but it never sleeps for long: it polls
//! with a 100 ms deadline and turns the time left into whole milliseconds, so the last
//! millisecond of every turn is a 0 ms poll repeated until the deadline passes. That is ~1% of a
//! core per client for as long as the app runs, idle or not (nine tenths of an idle client's
//! CPU, per `perf`), and an app has a client per cluster in every worker process.
//!
//! This thread instead asks librdkafka to call back when the client's queue goes from empty to
//! not empty (`rd_kafka_queue_cb_event_enable`, as rust-rdkafka's own stream consumer does),
//! then serves everything queued through rust-rdkafka's `BaseProducer::poll` — so delivery
//! reports reach the [`DeliveryReporter`] exactly as before — and sleeps again.
//!
//! The [`DeliveryReporter`] (the client's context) is here too: what the thread does with each
//! report.

use std::ffi::c_void;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::bindings as ffi;
use rdkafka::client::OAuthToken;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext, PurgeConfig};
use rdkafka::ClientContext;

use super::enqueue::report_undelivered;
use super::oauth::{token_for_client, TokenProvider};
use super::redirect::Redirect;
use super::{client_error, native};
use crate::config::ClusterId;
use crate::delivery::DeliveryTracker;
use crate::metrics::ClusterProducerMetrics;
use crate::transport::undelivered::Undelivered;
use crate::transport::{Cluster, Reachability};

/// How long the thread sleeps without a call from librdkafka before it looks at the queue
/// anyway: a safety net, never the way reports are noticed.
const RECHECK: Duration = Duration::from_secs(1);

/// A producer client whose delivery reports are served by a thread of its own. Clones share the
/// client; the thread stops when the last clone is dropped (which then closes the client, as
/// dropping rust-rdkafka's producers does: pending records are purged and reported).
#[derive(Clone)]
pub(super) struct ReportedProducer {
    client: Arc<BaseProducer<DeliveryReporter>>,
    /// Held for its drop, which stops the thread.
    _reports: Arc<ReportThread>,
}

impl Deref for ReportedProducer {
    type Target = BaseProducer<DeliveryReporter>;

    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl ReportedProducer {
    /// Starts serving `client`'s reports on a new thread.
    pub(super) fn start(client: BaseProducer<DeliveryReporter>) -> std::io::Result<Self> {
        let client = Arc::new(client);
        let wake = Arc::new(Wake::default());
        let handle = std::thread::Builder::new()
            .name("fastkafka-reports".to_owned())
            .spawn({
                let (client, wake) = (client.clone(), wake.clone());
                move || serve(client, &wake)
            })?;
        Ok(Self {
            client,
            _reports: Arc::new(ReportThread {
                wake,
                handle: Some(handle),
            }),
        })
    }

    /// How many times the thread looked at the queue since it started.
    #[cfg(test)]
    fn turns(&self) -> u64 {
        self._reports.wake.turns.load(Ordering::Relaxed)
    }
}

/// Stops the thread when the last handle goes.
struct ReportThread {
    wake: Arc<Wake>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for ReportThread {
    fn drop(&mut self) {
        self.wake.update(|state| state.stopping = true);
        if let Some(handle) = self.handle.take() {
            // A panic in a context callback already went to the panic hook; nothing to add.
            let _ = handle.join();
        }
    }
}

/// What wakes the thread: librdkafka's call, or the stop.
#[derive(Default)]
struct Wake {
    state: Mutex<WakeState>,
    changed: Condvar,
    turns: AtomicU64,
}

#[derive(Default)]
struct WakeState {
    queued: bool,
    stopping: bool,
}

impl Wake {
    fn update(&self, change: impl FnOnce(&mut WakeState)) {
        change(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_one();
    }

    /// Sleeps until librdkafka calls, the stop, or [`RECHECK`]; `false` once stopping.
    fn wait(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, RECHECK, |state| !state.queued && !state.stopping)
            .unwrap_or_else(PoisonError::into_inner);
        state.queued = false;
        !state.stopping
    }
}

/// librdkafka's call when the queue goes from empty to not empty. It runs on librdkafka's
/// threads, under the queue's lock: it only flags and wakes.
unsafe extern "C" fn queue_not_empty(_client: *mut ffi::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Wake` the serving thread registered; it stays alive until the
    // thread has unregistered the call (after which librdkafka makes no more).
    let wake = unsafe { &*opaque.cast::<Wake>() };
    wake.update(|state| state.queued = true);
}

/// The thread: serve what is queued, sleep until there is more, until stopped.
fn serve(client: Arc<BaseProducer<DeliveryReporter>>, wake: &Arc<Wake>) {
    // SAFETY: the client is alive for the whole function (`client` holds it); the handle
    // returned is ours and destroyed below.
    let queue = unsafe { ffi::rd_kafka_queue_get_main(client.client().native_ptr()) };
    let opaque = Arc::as_ptr(wake).cast_mut().cast::<c_void>();
    // SAFETY: `queue` is a live handle; `opaque` outlives the registration (see above).
    unsafe { ffi::rd_kafka_queue_cb_event_enable(queue, Some(queue_not_empty), opaque) };
    loop {
        wake.turns.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `queue` is a live handle.
        while unsafe { ffi::rd_kafka_queue_length(queue) } > 0 {
            // One event per call (a delivery report covers a whole request's records).
            client.poll(Duration::ZERO);
        }
        if !wake.wait() {
            break;
        }
    }
    // SAFETY: as above. librdkafka makes the call under the queue's lock and this takes it, so
    // no call is running once it returns; then the handle goes.
    unsafe {
        ffi::rd_kafka_queue_cb_event_enable(queue, None, std::ptr::null_mut());
        ffi::rd_kafka_queue_destroy(queue);
    }
}

/// Settles each record in the tracker it was sent for; logs and counts failed deliveries;
/// remembers authentication and TLS failures for the start's check.
pub(super) struct DeliveryReporter {
    pub(super) cluster: ClusterId,
    /// Failed deliveries, counted for [`crate::transport::Cluster::delivery_failures`] and
    /// logged one line per episode.
    pub(super) undelivered: Arc<Undelivered>,
    pub(super) security_failure: Arc<Mutex<Option<String>>>,
    pub(super) metrics: Option<Arc<ClusterProducerMetrics>>,
    /// The cluster's, shared with its consumers' clients.
    pub(super) reachability: Arc<Reachability>,
    /// Where the client gets OAUTHBEARER tokens.
    pub(super) token_provider: Option<Arc<dyn TokenProvider>>,
    /// Where records purged from the client are sent instead of failing: the standby a
    /// failover moved the traffic to ([`ReportedProducer::redirect_undelivered`]).
    pub(super) redirect: Redirect,
}

impl ReportedProducer {
    /// Hands every record the client holds — queued, or in flight without an answer (it may
    /// reach this cluster too: at least once) — over to `to`: librdkafka purges them, and their
    /// reports, served in order by the report thread, send each to `to` in its tracker.
    /// Returns what the client still holds (reports not served yet included).
    pub(super) fn redirect_undelivered(&self, to: Arc<dyn Cluster>) -> usize {
        let redirect = &self.context().redirect;
        redirect.point_at(to);
        self.purge(PurgeConfig::default().queue().inflight());
        let held = usize::try_from(self.in_flight_count()).unwrap_or(0);
        redirect.send_on(held);
        held
    }
}

impl ClientContext for DeliveryReporter {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        token_for_client(self.token_provider.as_ref())
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = match &error {
            KafkaError::Global(code) => Some(*code),
            _ => None,
        };
        if matches!(
            code,
            Some(
                RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::SSL
            )
        ) {
            // librdkafka's reasons name the mechanism and the broker, never the password.
            *self
                .security_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(format!("{error}: {reason}"));
        }
        client_error(&self.cluster, &self.reachability, &error, reason);
    }
}

impl ProducerContext for DeliveryReporter {
    type DeliveryOpaque = Arc<DeliveryTracker>;

    fn delivery(&self, result: &DeliveryResult<'_>, tracker: Arc<DeliveryTracker>) {
        match result {
            Ok(message) => {
                tracker.delivered();
                // librdkafka measures the name (and Rust checks it is UTF-8) at every call.
                let topic = message.topic();
                self.undelivered.delivered(topic);
                if let Some(metrics) = &self.metrics {
                    metrics.delivered(topic, 1, native::latency(message));
                }
            }
            Err((
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight,
                ),
                message,
            )) if self.redirect.keep(message, tracker.clone()) => {}
            Err((error, message)) => report_undelivered(
                &self.cluster,
                &self.undelivered,
                self.metrics.as_deref(),
                message.topic(),
                error,
                native::latency(message).unwrap_or_default(),
                &tracker,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::ClientConfig;

    use super::*;

    fn client() -> BaseProducer<DeliveryReporter> {
        let cluster = ClusterId::from_addresses(["127.0.0.1:1"]);
        let undelivered = Arc::new(Undelivered::new(&cluster));
        ClientConfig::new()
            // Nothing listens there; one connection attempt per 10 s keeps librdkafka quiet.
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("reconnect.backoff.ms", "10000")
            .set("reconnect.backoff.max.ms", "10000")
            .create_with_context(DeliveryReporter {
                cluster,
                undelivered,
                security_failure: Arc::default(),
                metrics: None,
                reachability: Arc::default(),
                token_provider: None,
                redirect: Redirect::default(),
            })
            .unwrap()
    }

    #[test]
    fn an_idle_client_leaves_its_thread_asleep() {
        let producer = ReportedProducer::start(client()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // rust-rdkafka's thread turns thousands of times in 300 ms (its last millisecond of
        // every 100 is a busy loop); this one looks at the queue when librdkafka calls (the
        // failed connection's error) and at most once a second otherwise.
        let turns = producer.turns();
        assert!(turns <= 5, "{turns} turns while idle");
    }

    #[test]
    fn reports_are_served_and_the_last_handle_stops_the_thread() {
        let producer = ReportedProducer::start(client()).unwrap();
        let tracker = crate::delivery::DeliveryTracker::new();
        tracker.sent(1);
        let record = crate::record::OutgoingRecord {
            value: Some(bytes::Bytes::from_static(b"{}")),
            ..Default::default()
        };
        super::super::enqueue::enqueue_record(&producer, "t", &record, tracker.clone()).unwrap();
        // No broker: purging the record reports it as failed, through the thread.
        producer.purge(PurgeConfig::default().queue());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !tracker.is_settled() {
            assert!(
                std::time::Instant::now() < deadline,
                "the report never came"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(tracker.outcome().is_err());
        let other = producer.clone();
        drop(producer);
        assert!(other
            ._reports
            .handle
            .as_ref()
            .is_some_and(|h| !h.is_finished()));
        // The thread holds the client while it runs: once the last handle is dropped, nothing
        // does.
        let client = Arc::downgrade(&other.client);
        drop(other);
        assert!(
            client.upgrade().is_none(),
            "the thread still holds the client"
        );
    }
}
