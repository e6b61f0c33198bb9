//! The one error type of the core.
//!
//! Every fallible operation returns [`Error`], one variant per kind of failure, so that a
//! caller in either language can tell a configuration mistake from a broken cluster from a
//! failed handler from a bug. A variant is never borrowed for an unrelated failure: a thread
//! that could not start is not a cluster's fault, a value that cannot be encoded is not a
//! handler's, a panic is neither. Where a failure has a cause it is the variant's `source`
//! ([`std::error::Error::source`]); causes are shared (`Arc`, `Box`) because errors travel
//! through channels that need `Clone`.
//!
//! The Python binding maps each variant to one exception class of `fastkafka.exceptions` (see
//! `src/python/mod.rs`, `exception_class`), a [`Error::ConsumerEnded`]'s source becoming its
//! exception's `__cause__`.

use std::sync::Arc;

/// Everything that can go wrong in the core.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; the message names the key or value and what is allowed.
    #[error("{0}")]
    Config(String),
    /// A cluster could not be reached or refused an operation.
    #[error("cluster {cluster}: {message}")]
    Transport {
        /// The cluster's identity (its bootstrap servers).
        cluster: String,
        /// What went wrong.
        message: String,
    },
    /// A client refused a record larger than its cluster takes (`message.max.bytes`): sending
    /// it again cannot help, unlike the failures of [`Error::Transport`].
    #[error("cluster {cluster}: {message}")]
    RecordTooLarge {
        /// The cluster's identity (its bootstrap servers).
        cluster: String,
        /// What the client said, with the topic.
        message: String,
    },
    /// A cluster refused a client for good (its credentials or permissions were rejected, or
    /// it was fenced by a newer member with its `group.instance.id`): retrying cannot help,
    /// so the consumer ends and its app fails.
    #[error("cluster {cluster}: {message} (fatal: this client cannot go on)")]
    Fatal {
        /// The cluster's identity (its bootstrap servers).
        cluster: String,
        /// What the cluster said.
        message: String,
    },
    /// What a consumer's handler produced could not be delivered and it has no dead-letter
    /// topic to put the input in: the consumer ends rather than skip the input.
    #[error("{consumer}: outputs not delivered and no dead-letter topic: {message}")]
    Undelivered {
        /// Which consumer.
        consumer: String,
        /// Why the outputs were not delivered.
        message: String,
    },
    /// The consumer or producer was closed before the operation.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// The engine could not start one of its threads (the system refused: too many threads,
    /// no memory).
    #[error("cannot start {what}: {source}")]
    Thread {
        /// The thread's job.
        what: String,
        /// What the system said.
        source: Arc<std::io::Error>,
    },
    /// A value could not be encoded into a record of `topic`.
    #[error("cannot encode a value for '{topic}': {message}")]
    Encode {
        /// The topic.
        topic: String,
        /// What the codec said.
        message: String,
    },
    /// A record of `topic` could not be decoded.
    #[error("cannot decode a record of '{topic}': {message}")]
    Decode {
        /// The topic.
        topic: String,
        /// What the codec said.
        message: String,
    },
    /// Something waited for did not happen in time (a test harness's watch).
    #[error("{what} within {after:?}")]
    TimedOut {
        /// What did not happen (`nothing arrived on 'predictions'`).
        what: String,
        /// How long it was waited for.
        after: std::time::Duration,
    },
    /// A handler failed and asked its consumer to stop.
    #[error("handler failed: {0}")]
    Handler(String),
    /// Code panicked where the engine can catch it (a handler, a consumer loop): a bug, which
    /// ends what it was part of.
    #[error("{what} panicked: {message}")]
    Panicked {
        /// What panicked (`consumer loop`).
        what: String,
        /// The panic's message.
        message: String,
    },
    /// A consumer of a running app ended without being stopped; the app fails with this.
    #[error("{consumer} ended: {source}")]
    ConsumerEnded {
        /// Which consumer (e.g. `consumer of 'signals'`).
        consumer: String,
        /// Why its loop ended.
        source: Box<Error>,
    },
}

/// Shorthand for results of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
