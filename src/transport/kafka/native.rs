//! Consumed messages turned into [`Record`]s a batch at a time, and what the clients read through
//! librdkafka's C API where rust-rdkafka's safe API falls short: header keys that are not UTF-8
//! (rust-rdkafka panics on them), the cached high watermark (rust-rdkafka only offers the
//! blocking query), a delivered record's latency, a flush that waits on librdkafka's count of
//! records in flight, the answer a new client got when it connected, and a start offset set in
//! a list librdkafka lends a rebalance callback.

use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use rdkafka::client::Client;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, TopicPartitionList};

use super::rebalance::RebalanceCommitter;
use super::BLOCKING_CALL_TIMEOUT;
use crate::record::{Record, TimestampType};

/// Consumed messages as [`Record`]s.
///
/// Their keys and payloads are copied into one buffer that the records share (one allocation per
/// batch rather than two per record: at a hundred thousand records a second the allocator was a
/// tenth of the consumer loop's time), and records of one topic share one topic name. A record
/// kept after its batch keeps that buffer alive; batches are `max_poll_records` small.
pub(super) fn to_records(messages: &[BorrowedMessage<'_>], topics: &mut TopicNames) -> Vec<Record> {
    let size = messages
        .iter()
        .map(|message| message.key_len() + message.payload_len())
        .sum();
    let mut buffer = Vec::with_capacity(size);
    for message in messages {
        buffer.extend_from_slice(message.key().unwrap_or_default());
        buffer.extend_from_slice(message.payload().unwrap_or_default());
    }
    let buffer = Bytes::from(buffer);
    let mut start = 0;
    let mut take = |len: usize| {
        let bytes = buffer.slice(start..start + len);
        start += len;
        bytes
    };
    messages
        .iter()
        .map(|message| Record {
            topic: topics.of(message.topic()),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis().unwrap_or(-1),
            timestamp_type: match message.timestamp() {
                rdkafka::Timestamp::LogAppendTime(_) => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
            key: message.key().map(|key| take(key.len())),
            value: message.payload().map(|payload| take(payload.len())),
            headers: headers_of(message),
        })
        .collect()
}

/// The topic names a consumer has seen, shared by its records (a consumer reads few topics).
#[derive(Debug, Default)]
pub(super) struct TopicNames(Vec<Arc<str>>);

impl TopicNames {
    fn of(&mut self, topic: &str) -> Arc<str> {
        if let Some(known) = self.0.iter().find(|known| ***known == *topic) {
            return known.clone();
        }
        let name: Arc<str> = topic.into();
        self.0.push(name.clone());
        name
    }
}

/// `message` as a record to send again (a delivery report's message, moved to another
/// cluster by a failover).
pub(super) fn outgoing(message: &BorrowedMessage<'_>) -> crate::record::OutgoingRecord {
    use rdkafka::message::Message;
    crate::record::OutgoingRecord {
        key: message.key().map(bytes::Bytes::copy_from_slice),
        value: message.payload().map(bytes::Bytes::copy_from_slice),
        headers: headers_of(message),
    }
}

/// The headers of `message`, read through librdkafka's C API.
///
/// rust-rdkafka's `Headers::iter` unwraps each key as UTF-8 and panics on any other bytes; a
/// header key is whatever the producer sent, so one odd record would kill the consumer loop.
/// Keys are read as bytes and decoded lossily (U+FFFD for invalid sequences); values stay
/// bytes, or `None` where null.
fn headers_of(message: &BorrowedMessage<'_>) -> Vec<crate::record::Header> {
    use rdkafka::bindings as ffi;

    let mut headers_ptr: *mut ffi::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `message.ptr()` is the live message this borrow holds; librdkafka only writes
    // the out-pointer, which stays owned by the message.
    let found = unsafe { ffi::rd_kafka_message_headers(message.ptr(), &mut headers_ptr) };
    if found != ffi::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers_ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: `headers_ptr` belongs to the message and outlives this call.
    let count = unsafe { ffi::rd_kafka_header_cnt(headers_ptr) };
    let mut headers = Vec::with_capacity(count);
    for index in 0..count {
        let mut name: *const std::os::raw::c_char = std::ptr::null();
        let mut value: *const std::os::raw::c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: as above; the out-pointers point into the message's own header storage.
        let error = unsafe {
            ffi::rd_kafka_header_get_all(headers_ptr, index, &mut name, &mut value, &mut size)
        };
        if error != ffi::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            continue;
        }
        // SAFETY: librdkafka's header names are NUL-terminated; values are `size` bytes.
        let key = unsafe { std::ffi::CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        // A null pointer is a null value, which Kafka keeps apart from an empty one.
        let value = (!value.is_null()).then(|| {
            Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) })
        });
        headers.push((key, value));
    }
    headers
}

/// The high watermark librdkafka last saw in a fetch response for the partition, without a
/// request to the cluster (rust-rdkafka only offers the blocking query).
pub(super) fn cached_high_watermark(
    consumer: &StreamConsumer<RebalanceCommitter>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    use rdkafka::bindings as ffi;

    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client pointer is alive while `consumer` is; librdkafka only writes the
    // two out-parameters.
    let error = unsafe {
        ffi::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (error == ffi::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// How long the cluster took to acknowledge `message` since it was handed to the client
/// (librdkafka measures it in microseconds), if known.
pub(super) fn latency(message: &BorrowedMessage<'_>) -> Option<std::time::Duration> {
    // SAFETY: the pointer is the live message of the delivery report being handled.
    let micros = unsafe { rdkafka::bindings::rd_kafka_message_latency(message.ptr()) };
    u64::try_from(micros)
        .ok()
        .map(std::time::Duration::from_micros)
}

/// Waits until every record handed to the producer `client` has its delivery report served, for at most
/// [`BLOCKING_CALL_TIMEOUT`]. librdkafka's own flush does exactly that when reports come as
/// events, served by the client's report thread (`reports.rs`): it waits on the count of
/// records in flight. rust-rdkafka's `flush` instead calls it without a timeout and then polls
/// the report queue itself for 100 ms at a time, a queue the report thread empties first, so it
/// would wait those 100 ms whenever a record is in flight.
pub(super) fn flush_until_delivered<C: ClientContext>(client: &Client<C>) -> KafkaResult<()> {
    let timeout_ms = i32::try_from(BLOCKING_CALL_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the pointer is the live client `client` is for the whole call; librdkafka's
    // flush may be called from any thread.
    let code = unsafe { rdkafka::bindings::rd_kafka_flush(client.native_ptr(), timeout_ms) };
    match RDKafkaErrorCode::from(code) {
        RDKafkaErrorCode::NoError => Ok(()),
        error => Err(KafkaError::Flush(error)),
    }
}

/// Whether a broker answered the metadata request a new client sends by itself when it
/// connects, waiting up to `timeout` for it. That answer comes ~50 ms before one to a request
/// of our own: librdkafka then retires the bootstrap connection for one to the broker the
/// answer names, and opens it only after its connection throttle (half of
/// `reconnect.backoff.ms`). Only for a client's first check: the answer stays cached.
pub(super) fn answered_since_connecting<C: ClientContext>(
    client: &Client<C>,
    timeout: Duration,
) -> KafkaResult<()> {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the pointer is the live client `client` is for the whole call.
    let controller =
        unsafe { rdkafka::bindings::rd_kafka_controllerid(client.native_ptr(), timeout_ms) };
    // -1: no answer yet, or one without a controller (a broker too old to name it).
    if controller == -1 {
        return Err(KafkaError::MetadataFetch(
            RDKafkaErrorCode::OperationTimedOut,
        ));
    }
    Ok(())
}

/// Sets `partition`'s offset in `list`, a list librdkafka handed a callback and reads again
/// once it returns (rust-rdkafka lends it immutably).
pub(super) fn set_offset(list: &TopicPartitionList, topic: &str, partition: i32, offset: i64) {
    let Ok(topic) = std::ffi::CString::new(topic) else {
        return; // a topic name never holds a NUL
    };
    // SAFETY: `list` is a live list for the duration of the callback that lent it; this
    // changes the offset of one of its elements in place, as librdkafka's API allows.
    unsafe {
        rdkafka::bindings::rd_kafka_topic_partition_list_set_offset(
            list.ptr(),
            topic.as_ptr(),
            partition,
            offset,
        );
    }
}
