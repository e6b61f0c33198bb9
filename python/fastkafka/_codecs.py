"""Turning messages into bytes and back.

Payloads cross the Rust boundary as ``bytes``; this module owns the conversions on the Python
side. Each handler gets its codec once, at decoration, with its pydantic ``TypeAdapter`` built
then (pydantic-core parses JSON bytes in Rust already), so the per-message cost is one
``validate_json`` or ``dump_json`` call.

A codec is named (``"json"``, or ``"avro"``: see ``fastkafka.encoder``) or a
callable: a decoder ``(bytes, type) -> message``, an
encoder ``(message) -> bytes``, as in FastKafka.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ._avro import fastavro_module
from .encoder import avro_decoder, avro_encoder
from .exceptions import ConfigError

__all__ = ["Decode", "Encode", "describe_decode_error", "make_decoder", "make_encoder"]

Decode = Callable[[bytes], Any]
Encode = Callable[[Any], bytes]

KNOWN_CODECS = ("json", "avro")


def make_decoder(decoder: str | Callable[[bytes, type[Any]], Any], model: type[Any]) -> Decode:
    """A function from a record's bytes to a ``model`` instance."""
    if callable(decoder):
        custom = decoder
        return lambda raw: custom(raw, model)
    if decoder == "avro":
        fastavro_module()  # fail at decoration, not at the first message, when it is missing
        return lambda raw: avro_decoder(raw, model)
    if decoder == "json":
        # A model's own validator skips TypeAdapter's Python wrapper (per message, it counts).
        validator = getattr(model, "__pydantic_validator__", None) or TypeAdapter(model).validator
        validate: Decode = validator.validate_json
        return validate
    raise ConfigError(f"Unknown decoder - {decoder} (known: {', '.join(KNOWN_CODECS)})")


def make_instance_encoder(encoder: str | Callable[[Any], bytes], model: type[Any]) -> Encode:
    """:func:`make_encoder`'s function for objects known to be ``model`` instances: for JSON,
    the model's own serializer, without the check and the Python call around it (~140 ns of
    a producer's send)."""
    serializer = getattr(model, "__pydantic_serializer__", None)
    if encoder == "json" and serializer is not None:
        to_json: Encode = serializer.to_json
        return to_json
    return make_encoder(encoder, model)


def make_encoder(encoder: str | Callable[[Any], bytes], model: type[Any]) -> Encode:
    """A function from a ``model`` instance (or data valid for it) to bytes."""
    if callable(encoder):
        return encoder
    if encoder == "avro":
        fastavro_module()
        return avro_encoder
    if encoder == "json":
        adapter = TypeAdapter(model)
        # A model's own serializer, as for decoding: TypeAdapter's costs 15% more per message.
        serializer = getattr(model, "__pydantic_serializer__", None) or adapter.serializer
        to_json = serializer.to_json

        def encode_json(message: Any) -> bytes:
            if not isinstance(message, model):
                message = adapter.validate_python(message)
            encoded: bytes = to_json(message)
            return encoded

        return encode_json
    raise ConfigError(f"Unknown encoder - {encoder} (known: {', '.join(KNOWN_CODECS)})")


# Opt-in for debugging: FASTKAFKA_LOG_PAYLOADS=N adds a record's first N bytes to the line
# that reports it could not be decoded. Off by default: payloads may be personal or secret.
LOG_PAYLOADS_VARIABLE = "FASTKAFKA_LOG_PAYLOADS"


def describe_decode_error(error: Exception, payload: bytes) -> str:
    """Why a record could not be decoded, for a log line: pydantic's errors by location, type
    and message, *without* the input values pydantic would quote — those are the message's
    contents, which may be personal or secret data — unless FASTKAFKA_LOG_PAYLOADS asks for
    the payload's first bytes."""
    if not isinstance(error, ValidationError):
        described = f"{type(error).__name__}: {error}"
    else:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or '(message)'}: "
            f"{problem['msg']} [type={problem['type']}]"
            for problem in error.errors(
                include_url=False, include_input=False, include_context=False
            )
        )
        count = error.error_count()
        described = f"{count} validation error{'s' if count > 1 else ''} for {error.title}: "
        described += problems
    shown = _payload_bytes_to_log()
    if shown > 0:
        cut = " (truncated)" if len(payload) > shown else ""
        described += f"; payload={payload[:shown]!r}{cut}"
    return described


def _payload_bytes_to_log() -> int:
    setting = os.environ.get(LOG_PAYLOADS_VARIABLE, "0")
    try:
        return max(0, int(setting))
    except ValueError:
        return 0
