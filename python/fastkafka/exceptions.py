"""The exceptions fastkafka raises, declared once.

The Rust core raises these classes too: each variant of its one error enum has its class here
(``src/python/mod.rs``, ``exception_class``), so an ``except`` clause catches the same failure
whichever side found it, and a consumer's end (:class:`ConsumerEndedError`) keeps why as its
``__cause__``. Each class also derives from the builtin an existing FastKafka app would
already catch: a configuration mistake is a ``ValueError``, using something that is not
running is a ``RuntimeError``, waiting in vain is a ``TimeoutError``.
"""

from __future__ import annotations

__all__ = [
    "AppNotStartedError",
    "ClosedError",
    "ConfigError",
    "ConsumerEndedError",
    "DecodeError",
    "DeliveryError",
    "EncodeError",
    "FastKafkaError",
    "FatalClusterError",
    "HandlerError",
    "PanicError",
    "RecordTooLargeError",
    "ThreadStartError",
    "TransportError",
    "WaitTimeoutError",
]


class FastKafkaError(Exception):
    """Base class of every fastkafka error."""


class ConfigError(FastKafkaError, ValueError):
    """Invalid configuration; the message names the key or value and what is allowed."""


class TransportError(FastKafkaError):
    """A cluster could not be reached or refused an operation."""


class RecordTooLargeError(TransportError):
    """A client refused a record larger than its cluster takes (``message.max.bytes``):
    sending it again cannot help."""


class FatalClusterError(TransportError):
    """A cluster refused a client for good (credentials or permissions rejected, fenced by a
    newer member with its ``group.instance.id``): retrying cannot help."""


class DeliveryError(TransportError):
    """A consumer's outputs could not be delivered and it has no dead-letter topic."""


class ClosedError(FastKafkaError, RuntimeError):
    """A consumer or producer was used after it was closed."""


class AppNotStartedError(FastKafkaError, RuntimeError):
    """A producer was called while its app was not running."""


class ThreadStartError(FastKafkaError, RuntimeError):
    """The engine could not start one of its threads (too many threads, no memory)."""


class EncodeError(FastKafkaError, ValueError):
    """A value could not be encoded into a record of its topic."""


class DecodeError(FastKafkaError, ValueError):
    """A record could not be decoded."""


class WaitTimeoutError(FastKafkaError, TimeoutError):
    """Something waited for did not happen in time."""


class HandlerError(FastKafkaError):
    """A handler failed and stopped its consumer."""


class ConsumerEndedError(HandlerError):
    """A consumer of a running app ended without being stopped; ``__cause__`` says why."""


class PanicError(FastKafkaError):
    """Engine code panicked (a bug): what it was part of ends."""
