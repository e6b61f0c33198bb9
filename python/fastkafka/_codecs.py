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
import traceback
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ._avro import fastavro_module
from .encoder import avro_decoder, avro_encoder
from .exceptions import ConfigError

__all__ = [
    "Decode",
    "Encode",
    "describe_decode_error",
    "describe_error",
    "describe_traceback",
    "make_decoder",
    "make_encoder",
]

Decode = Callable[[bytes | None], Any]
Encode = Callable[[Any], bytes]

KNOWN_CODECS = ("json", "avro")


def make_decoder(
    decoder: str | Callable[[bytes, type[Any]], Any],
    model: type[Any],
    *,
    tombstone_is_none: bool = False,
) -> Decode:
    """A function from a record's value to a ``model`` instance.

    A tombstone (a record whose value is null) is None where the handler takes None
    (``tombstone_is_none``: its message is typed ``Model | None``), whatever the codec; for
    any other handler it fails validation as None does (the record is dead-lettered, still a
    tombstone, or logged)."""
    # A model's own validator skips TypeAdapter's Python wrapper (per message, it counts).
    validator = getattr(model, "__pydantic_validator__", None) or TypeAdapter(model).validator
    decode_bytes = _bytes_decoder(decoder, model, validator)
    validate = validator.validate_python

    def decode(raw: bytes | None) -> Any:
        if raw is None:
            return None if tombstone_is_none else validate(None)
        return decode_bytes(raw)

    return decode


def _bytes_decoder(
    decoder: str | Callable[[bytes, type[Any]], Any], model: type[Any], validator: Any
) -> Callable[[bytes], Any]:
    if callable(decoder):
        custom = decoder
        return lambda raw: custom(raw, model)
    if decoder == "avro":
        fastavro_module()  # fail at decoration, not at the first message, when it is missing
        return lambda raw: avro_decoder(raw, model)
    if decoder == "json":
        validate: Callable[[bytes], Any] = validator.validate_json
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


def describe_decode_error(error: Exception, payload: bytes | None) -> str:
    """Why a record could not be decoded, for a log line: :func:`describe_error`'s text, with
    the payload's first bytes only where FASTKAFKA_LOG_PAYLOADS asks for them."""
    described = describe_error(error)
    if not isinstance(error, ValidationError):
        described = f"{type(error).__name__}: {described}"
    shown = _payload_bytes_to_log()
    if shown > 0 and payload is not None:
        cut = " (truncated)" if len(payload) > shown else ""
        described += f"; payload={payload[:shown]!r}{cut}"
    return described


def describe_error(error: BaseException) -> str:
    """An exception's message for logs and dead-letter headers. A pydantic ``ValidationError``
    is described by location, type and message *without* the input values pydantic quotes:
    those are a message's contents, which may be personal or secret data — whether the error
    came from decoding a record or from a handler validating something itself."""
    if not isinstance(error, ValidationError):
        return str(error)
    problems = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or '(message)'}: "
        f"{problem['msg']} [type={problem['type']}]"
        for problem in error.errors(include_url=False, include_input=False, include_context=False)
    )
    count = error.error_count()
    return f"{count} validation error{'s' if count > 1 else ''} for {error.title}: {problems}"


def describe_traceback(error: BaseException) -> str:
    """``error``'s traceback, with its causes and contexts, each message as
    :func:`describe_error` gives it (a validation error deep in the chain quotes no input)."""
    formatted = traceback.TracebackException.from_exception(error)
    pending = [(formatted, error)]
    seen: set[int] = set()
    while pending:
        part, exception = pending.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        if isinstance(exception, ValidationError):
            # The one message TracebackException formats; it has no public setter.
            part._str = describe_error(exception)  # type: ignore[attr-defined]
        if part.__cause__ is not None and exception.__cause__ is not None:
            pending.append((part.__cause__, exception.__cause__))
        if part.__context__ is not None and exception.__context__ is not None:
            pending.append((part.__context__, exception.__context__))
        if isinstance(exception, BaseExceptionGroup) and part.exceptions:
            pending.extend(zip(part.exceptions, exception.exceptions, strict=False))
    return "".join(formatted.format())


def _payload_bytes_to_log() -> int:
    setting = os.environ.get(LOG_PAYLOADS_VARIABLE, "0")
    try:
        return max(0, int(setting))
    except ValueError:
        return 0
