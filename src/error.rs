//! The one error type of the core.
//!
//! Every fallible operation returns [`Error`]; the Python binding maps each variant to one
//! exception class of `fastkafka.exceptions` (see `src/python/mod.rs`), so a caller in either
//! language can tell a configuration mistake from a broken cluster from a failed handler.

/// Everything that can go wrong in the core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// The consumer or producer was closed before the operation.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// A handler failed and asked its consumer to stop.
    #[error("handler failed: {0}")]
    Handler(String),
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
