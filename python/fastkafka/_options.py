"""The Kafka client options an app and its decorators accept, and their librdkafka names.

FastKafka passed its keyword arguments to aiokafka, so apps are written with aiokafka's option
names. Each is listed once here with what it becomes: a librdkafka property, a setting of the
consumer loop, or — for the few aiokafka options librdkafka has no counterpart for — a clear
error. A keyword with a dot in its name is a raw librdkafka property, passed through as is
(``FastKafka(**{"socket.keepalive.enable": True})``); librdkafka rejects unknown ones at start,
naming them. Anything else is a mistake and is rejected with a ``ValueError`` naming it, at
construction or decoration, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import ConfigError

__all__ = [
    "CONSUMER_OPTIONS",
    "PRODUCER_OPTIONS",
    "ConsumerSettings",
    "check_options",
    "consumer_settings",
    "producer_properties",
]

# Options of both clients: aiokafka name -> librdkafka property.
_COMMON = {
    "client_id": "client.id",
    "metadata_max_age_ms": "metadata.max.age.ms",
    "retry_backoff_ms": "retry.backoff.ms",
    "connections_max_idle_ms": "connections.max.idle.ms",
    "security_protocol": "security.protocol",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "sasl_kerberos_service_name": "sasl.kerberos.service.name",
}

_CONSUMER = {
    **_COMMON,
    "group_instance_id": "group.instance.id",
    "fetch_max_wait_ms": "fetch.wait.max.ms",
    "fetch_max_bytes": "fetch.max.bytes",
    "fetch_min_bytes": "fetch.min.bytes",
    "max_partition_fetch_bytes": "max.partition.fetch.bytes",
    "check_crcs": "check.crcs",
    "partition_assignment_strategy": "partition.assignment.strategy",
    "max_poll_interval_ms": "max.poll.interval.ms",
    "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms",
    "isolation_level": "isolation.level",
    "request_timeout_ms": "socket.timeout.ms",
}

_PRODUCER = {
    **_COMMON,
    "acks": "acks",
    "compression_type": "compression.type",
    "max_batch_size": "batch.size",
    "max_request_size": "message.max.bytes",
    "linger_ms": "linger.ms",
    "enable_idempotence": "enable.idempotence",
    "request_timeout_ms": "request.timeout.ms",
    "send_backoff_ms": "retry.backoff.ms",
}

# Consumer options the consumer loop itself implements.
_CONSUMER_LOOP = {
    "group_id",
    "auto_offset_reset",
    "max_poll_records",
    "enable_auto_commit",
    "auto_commit_interval_ms",
}

# aiokafka options with no librdkafka counterpart: accepted names, refused with a reason.
_UNSUPPORTED = {
    "key_deserializer": "use decoder= on @app.consumes",
    "value_deserializer": "use decoder= on @app.consumes",
    "key_serializer": "use encoder= on @app.produces",
    "value_serializer": "use encoder= on @app.produces",
    "partitioner": "librdkafka partitions by key (pass 'partitioner' as a raw property name)",
    "ssl_context": "give ssl_cafile/ssl_certfile/ssl_keyfile instead",
    "sasl_oauth_token_provider": "not supported by the librdkafka transport",
    "sasl_kerberos_domain_name": "not supported by the librdkafka transport",
    "transactional_id": "transactions are not supported",
    "transaction_timeout_ms": "transactions are not supported",
    "rebalance_timeout_ms": "librdkafka uses max_poll_interval_ms",
    "consumer_timeout_ms": "not used: the consumer loop waits for records without a timeout",
    "exclude_internal_topics": "internal topics are never subscribed to by name",
    "api_version": "librdkafka negotiates the API version",
}

CONSUMER_OPTIONS = frozenset(_CONSUMER) | _CONSUMER_LOOP | frozenset(_UNSUPPORTED)
PRODUCER_OPTIONS = frozenset(_PRODUCER) | frozenset(_UNSUPPORTED)


def _is_raw(name: str) -> bool:
    return "." in name


def check_options(given: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Raise ``ConfigError`` (a ``ValueError``) naming every option of ``given`` not allowed."""
    allowed = frozenset(allowed)
    unknown = sorted(name for name in given if name not in allowed and not _is_raw(name))
    if unknown:
        raise ConfigError(
            f"Unallowed key arguments passed: {', '.join(unknown)} (in {where}); "
            f"allowed: {', '.join(sorted(allowed))}, or a librdkafka property with dots in "
            f"its name"
        )
    for name in given:
        if name in _UNSUPPORTED and not (name == "api_version" and given[name] == "auto"):
            raise ConfigError(f"Option {name!r} is not supported: {_UNSUPPORTED[name]}")


def _property_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None and name == "compression.type":
        return "none"
    if name == "security.protocol" and isinstance(value, str):
        return value.lower()
    if isinstance(value, str | int | float):
        return str(value)
    # The value is not shown: it may be a password or a key.
    raise ConfigError(
        f"Option for librdkafka property {name!r} must be a string, number or bool, "
        f"got a value of type {type(value).__name__}"
    )


def _translate(options: Mapping[str, Any], table: Mapping[str, str]) -> dict[str, str]:
    properties: dict[str, str] = {}
    for name, value in options.items():
        if _is_raw(name):
            properties[name] = _property_value(name, value)
        elif name in table:
            properties[table[name]] = _property_value(table[name], value)
    return properties


@dataclass(frozen=True)
class ConsumerSettings:
    """What a consumer's options become."""

    group_id: str | None
    auto_offset_reset: str
    max_poll_records: int
    commit_interval_ms: int | None
    properties: dict[str, str]


def consumer_settings(options: Mapping[str, Any]) -> ConsumerSettings:
    """Split a consumer's options into loop settings and librdkafka properties."""
    reset = options.get("auto_offset_reset", "earliest")
    if reset not in ("earliest", "latest"):
        raise ConfigError(f"auto_offset_reset must be 'earliest' or 'latest', got {reset!r}")
    max_poll_records = options.get("max_poll_records", 100)
    if not isinstance(max_poll_records, int) or max_poll_records < 1:
        raise ConfigError(f"max_poll_records must be a positive int, got {max_poll_records!r}")
    interval = int(options.get("auto_commit_interval_ms", 5000))
    return ConsumerSettings(
        group_id=options.get("group_id"),
        auto_offset_reset=reset,
        max_poll_records=max_poll_records,
        commit_interval_ms=interval if options.get("enable_auto_commit", True) else None,
        properties=_translate(options, _CONSUMER),
    )


def producer_properties(options: Mapping[str, Any]) -> dict[str, str]:
    """A producer's options as librdkafka properties."""
    return _translate(options, _PRODUCER)
