//! [`SendLane`]: records on their way to a cluster's producer client, handed over from a thread
//! of the lane's own.
//!
//! Handing a record to librdkafka costs its caller ~0.8 µs (an allocation and a copy, a topic
//! lookup, the partitioner, a lock, clock reads, at times a wake-up of a broker thread). For a
//! caller whose own thread is its app's bottleneck — Python's event loop, which runs every
//! handler and holds the GIL while it sends — that is the largest part of a send; taking a
//! record into the lane is a lock and a push. So a transport may give each cluster a lane
//! ([`super::KafkaTransport::with_send_lanes`]); the Rust API, whose handlers run on many
//! threads, hands records over itself.
//!
//! What a lane keeps of a direct enqueue:
//! - **order**: one queue, one thread, records handed over in the order taken, waiting (not
//!   skipping) while the client's queue is full;
//! - **delivery tracking**: a record counts in its tracker from the moment the lane takes it,
//!   so a batch's offsets wait for it as for any other output;
//! - **backpressure**: the lane holds at most as many records as the client's own queue (and at
//!   most [`MAX_RECORDS`] and [`MAX_BYTES`]); a full lane hands the caller its records back, and
//!   the caller waits for room as it would for the client (whose full queue stops the lane);
//! - **errors**: a record too large for `message.max.bytes` is refused at once, in the
//!   caller's thread, with librdkafka's own error ([`too_large`]); anything else the client
//!   refuses fails the record's delivery, logged and counted like a failed delivery report.
//!
//! The thread drains the lane in turns while records come (a short sleep between turns, so a
//! busy caller never pays a wake-up) and parks once a turn finds the lane empty.

use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::enqueue::{enqueue_record, is_queue_full, report_undelivered};
use super::reports::ReportedProducer;
use crate::config::ClusterId;
use crate::delivery::DeliveryTracker;
use crate::metrics::ClusterProducerMetrics;
use crate::record::OutgoingRecord;
use crate::transport::undelivered::Undelivered;
use crate::transport::QUEUE_FULL_TIMEOUT;

/// The most records a lane holds, whatever the client's queue takes.
pub(super) const MAX_RECORDS: usize = 10_000;
/// The most payload bytes a lane holds (one record larger than this is still taken alone).
pub(super) const MAX_BYTES: usize = 64 << 20;
/// The thread's pause between turns while records come. Once a turn found the lane empty, the
/// thread parks (and the next record wakes it): a caller's records come in bursts (one per
/// batch its handler is handed), and a thread that kept turning between bursts paid a wake-up
/// every turn — more than one per record at a few thousand records a second
/// (`benches/bench_paced.py`) — where parking costs one wake-up per burst.
const TURN: Duration = Duration::from_micros(200);
/// The pause before handing a record over again to a client whose queue was full.
const ROOM_POLL: Duration = Duration::from_millis(1);

/// What the lane's thread needs of the cluster: its client, and what a refused record is
/// reported to.
pub(super) struct LaneClient {
    pub(super) cluster: ClusterId,
    pub(super) producer: ReportedProducer,
    pub(super) undelivered: Arc<Undelivered>,
    pub(super) metrics: Option<Arc<ClusterProducerMetrics>>,
}

/// Records waiting for a cluster's producer client, and the thread that hands them over.
pub(super) struct SendLane {
    shared: Arc<Shared>,
    /// `message.max.bytes`: larger records are refused in the caller's thread.
    max_message_bytes: usize,
    /// How many records the lane holds at most.
    capacity: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the parked thread.
    wake: Condvar,
    /// Tells [`SendLane::drain`] the lane is empty and everything was handed over.
    drained: Condvar,
}

#[derive(Default)]
struct State {
    queued: Vec<Laned>,
    queued_bytes: usize,
    /// Records the thread took and has not handed over yet.
    in_hand: usize,
    parked: bool,
    closed: bool,
}

struct Laned {
    topic: Arc<str>,
    record: OutgoingRecord,
    tracker: Arc<DeliveryTracker>,
}

impl SendLane {
    /// Starts the lane's thread. `queue_capacity` is the client's
    /// `queue.buffering.max.messages`.
    pub(super) fn start(
        client: LaneClient,
        max_message_bytes: usize,
        queue_capacity: usize,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            drained: Condvar::new(),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("fastkafka-send".to_owned())
            .spawn(move || send_in_turns(&thread_shared, &client))?;
        Ok(Self {
            shared,
            max_message_bytes,
            capacity: queue_capacity.clamp(1, MAX_RECORDS),
        })
    }

    /// Takes `records` in order, as many as there is room for, counting each in `tracker`;
    /// returns the rest. Fails, taking none, if one is too large for the cluster.
    pub(super) fn take(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
        tracker: &Arc<DeliveryTracker>,
    ) -> Result<Vec<OutgoingRecord>, KafkaError> {
        if let Some(error) = records
            .iter()
            .find_map(|record| too_large(record, self.max_message_bytes))
        {
            return Err(error);
        }
        let mut state = self.shared.lock();
        let mut rest = records.into_iter();
        let mut taken = 0;
        for record in rest.by_ref() {
            if !self.has_room(&state, &record) {
                tracker.sent(taken);
                let mut back = vec![record];
                back.extend(rest);
                return Ok(self.taken(state, back));
            }
            self.push(&mut state, topic, record, tracker);
            taken += 1;
        }
        tracker.sent(taken);
        Ok(self.taken(state, Vec::new()))
    }

    /// [`SendLane::take`] for one record: `Some(record)` back when there is no room.
    pub(super) fn take_one(
        &self,
        topic: &str,
        record: OutgoingRecord,
        tracker: &Arc<DeliveryTracker>,
    ) -> Result<Option<OutgoingRecord>, KafkaError> {
        if let Some(error) = too_large(&record, self.max_message_bytes) {
            return Err(error);
        }
        let mut state = self.shared.lock();
        if !self.has_room(&state, &record) {
            return Ok(Some(record));
        }
        // Counted before the thread can hand it over: its delivery report may come at once.
        tracker.sent(1);
        self.push(&mut state, topic, record, tracker);
        Ok(self.taken(state, None))
    }

    /// Waits, for at most `timeout`, until every record taken so far is in the client's
    /// hands; false if some are still waiting for room in its queue.
    pub(super) fn drain(&self, timeout: Duration) -> bool {
        let state = self.shared.lock();
        let (_state, waited) = self
            .shared
            .drained
            .wait_timeout_while(state, timeout, |state| {
                !state.queued.is_empty() || state.in_hand > 0
            })
            .unwrap_or_else(PoisonError::into_inner);
        !waited.timed_out()
    }

    /// Whether the lane takes `record` now: while it holds (queued or in its thread's hands)
    /// fewer records than its capacity and fewer bytes than [`MAX_BYTES`] — or nothing, so a
    /// record of any size gets through.
    fn has_room(&self, state: &State, record: &OutgoingRecord) -> bool {
        let held = state.queued.len() + state.in_hand;
        held == 0 || (held < self.capacity && state.queued_bytes + record.value_len() <= MAX_BYTES)
    }

    fn push(
        &self,
        state: &mut State,
        topic: &str,
        record: OutgoingRecord,
        tracker: &Arc<DeliveryTracker>,
    ) {
        // One topic's records share its name (the last record's, most often).
        let topic = match state.queued.last() {
            Some(last) if &*last.topic == topic => last.topic.clone(),
            _ => Arc::from(topic),
        };
        state.queued_bytes += record.value_len();
        state.queued.push(Laned {
            topic,
            record,
            tracker: tracker.clone(),
        });
    }

    /// Wakes the thread if it parked, and returns `back`.
    fn taken<T>(&self, mut state: MutexGuard<'_, State>, back: T) -> T {
        if state.parked && !state.queued.is_empty() {
            state.parked = false;
            self.shared.wake.notify_one();
        }
        back
    }
}

impl Drop for SendLane {
    /// The thread hands over what is left, then ends.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The lane's thread: takes everything queued, hands it over in order, and again, until the
/// lane is dropped.
fn send_in_turns(shared: &Shared, client: &LaneClient) {
    // Whether the last turn found the lane empty: the next empty one parks.
    let mut idle_turn = false;
    // Swapped with the lane's queue each turn, so that neither side allocates anew.
    let mut turn = Vec::new();
    loop {
        let mut state = shared.lock();
        if state.queued.is_empty() {
            shared.drained.notify_all();
            if state.closed {
                return;
            }
            if idle_turn {
                state.parked = true;
                let state = shared
                    .wake
                    .wait_while(state, |state| state.queued.is_empty() && !state.closed)
                    .unwrap_or_else(PoisonError::into_inner);
                drop(state);
                idle_turn = false;
            } else {
                drop(state);
                std::thread::sleep(TURN);
                idle_turn = true;
            }
            continue;
        }
        idle_turn = false;
        mem::swap(&mut state.queued, &mut turn);
        state.queued_bytes = 0;
        state.in_hand = turn.len();
        drop(state);
        for laned in turn.drain(..) {
            enqueue_waiting_for_room(client, laned);
            shared.lock().in_hand -= 1;
        }
    }
}

/// Hands one record to the client, waiting while its queue is full (for at most
/// [`QUEUE_FULL_TIMEOUT`], as a blocking send would); a refused record fails its delivery.
fn enqueue_waiting_for_room(client: &LaneClient, laned: Laned) {
    let Laned {
        topic,
        record,
        tracker,
    } = laned;
    let mut full_since: Option<Instant> = None;
    let refused = loop {
        match enqueue_record(&client.producer, &topic, &record, tracker.clone()) {
            Ok(()) => break None,
            Err(error) if is_queue_full(&error) => {
                let since = *full_since.get_or_insert_with(Instant::now);
                if since.elapsed() > QUEUE_FULL_TIMEOUT {
                    break Some(format!(
                        "the producer queue stayed full for {QUEUE_FULL_TIMEOUT:?}"
                    ));
                }
                std::thread::sleep(ROOM_POLL);
            }
            Err(error) => break Some(error.to_string()),
        }
    };
    match refused {
        None => {
            if let Some(metrics) = &client.metrics {
                metrics.sent(&topic, 1);
            }
        }
        Some(error) => report_undelivered(
            &client.cluster,
            &client.undelivered,
            client.metrics.as_deref(),
            &topic,
            &error,
            Duration::ZERO, // refused as it was handed to the client
            &tracker,
        ),
    }
}

/// librdkafka's refusal of a record larger than `message.max.bytes`, computed as librdkafka
/// does (`rd_kafka_msg_new0`: the record's largest v2 encoding), or None. Checked when the
/// lane takes a record, so that the caller still gets the error a direct enqueue gives.
pub(super) fn too_large(record: &OutgoingRecord, max_message_bytes: usize) -> Option<KafkaError> {
    // RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: five 32-bit varints, a 64-bit one, the attributes.
    const MAX_OVERHEAD: usize = 5 * 5 + 10 + 1;
    let headers: usize = record
        .headers
        .iter()
        .map(|(name, value)| {
            let value = value.as_ref().map_or(0, |value| value.len());
            name.len() + value + zigzag_varint_len(name.len()) + zigzag_varint_len(value)
        })
        .sum();
    let key = record.key.as_ref().map_or(0, |key| key.len());
    let wire_size = MAX_OVERHEAD + key + record.value_len() + headers;
    (wire_size > max_message_bytes).then_some(KafkaError::MessageProduction(
        RDKafkaErrorCode::MessageSizeTooLarge,
    ))
}

/// The length of `n`'s zigzag varint encoding (librdkafka's `rd_uvarint_enc_i64`).
fn zigzag_varint_len(n: usize) -> usize {
    let mut zigzag = (n as u64) << 1;
    let mut len = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        len += 1;
    }
    len
}
