"""The Kafka client options an app and its decorators accept.

FastKafka passed its keyword arguments to aiokafka, so apps are written with aiokafka's option
names. They are listed once here; whatever is not listed is a mistake and is rejected with a
``ValueError`` naming it, at construction or decoration, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .exceptions import ConfigError

__all__ = [
    "CONSUMER_OPTIONS",
    "PRODUCER_OPTIONS",
    "check_options",
]

_COMMON_OPTIONS = frozenset(
    {
        "client_id",
        "metadata_max_age_ms",
        "request_timeout_ms",
        "retry_backoff_ms",
        "api_version",
        "security_protocol",
        "ssl_context",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "connections_max_idle_ms",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    }
)

CONSUMER_OPTIONS = _COMMON_OPTIONS | frozenset(
    {
        "group_id",
        "group_instance_id",
        "key_deserializer",
        "value_deserializer",
        "fetch_max_wait_ms",
        "fetch_max_bytes",
        "fetch_min_bytes",
        "max_partition_fetch_bytes",
        "auto_offset_reset",
        "enable_auto_commit",
        "auto_commit_interval_ms",
        "check_crcs",
        "partition_assignment_strategy",
        "max_poll_interval_ms",
        "rebalance_timeout_ms",
        "session_timeout_ms",
        "heartbeat_interval_ms",
        "consumer_timeout_ms",
        "max_poll_records",
        "exclude_internal_topics",
        "isolation_level",
    }
)

PRODUCER_OPTIONS = _COMMON_OPTIONS | frozenset(
    {
        "key_serializer",
        "value_serializer",
        "acks",
        "compression_type",
        "max_batch_size",
        "partitioner",
        "max_request_size",
        "linger_ms",
        "send_backoff_ms",
        "enable_idempotence",
        "transactional_id",
        "transaction_timeout_ms",
    }
)


def check_options(given: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Raise ``ConfigError`` (a ``ValueError``) naming every option of ``given`` not allowed."""
    allowed = frozenset(allowed)
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConfigError(
            f"Unallowed key arguments passed: {', '.join(unknown)} (in {where}); "
            f"allowed: {', '.join(sorted(allowed))}"
        )
