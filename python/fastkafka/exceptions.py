"""The exceptions fastkafka raises, declared once.

The Rust core raises these classes too (``src/python.rs`` maps its one error enum onto them),
so an ``except`` clause catches the same mistake whichever side found it. Each class also
derives from the builtin an existing FastKafka app would already catch: a configuration
mistake is a ``ValueError``, using something that is not running is a ``RuntimeError``.
"""

from __future__ import annotations

__all__ = [
    "AppNotStartedError",
    "ClosedError",
    "ConfigError",
    "FastKafkaError",
    "HandlerError",
    "TransportError",
]


class FastKafkaError(Exception):
    """Base class of every fastkafka error."""


class ConfigError(FastKafkaError, ValueError):
    """Invalid configuration; the message names the key or value and what is allowed."""


class TransportError(FastKafkaError):
    """A cluster could not be reached or refused an operation."""


class ClosedError(FastKafkaError, RuntimeError):
    """A consumer or producer was used after it was closed."""


class AppNotStartedError(FastKafkaError, RuntimeError):
    """A producer was called while its app was not running."""


class HandlerError(FastKafkaError):
    """A handler failed and stopped its consumer."""
