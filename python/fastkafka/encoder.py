"""Codecs by name: FastKafka's ``fastkafka.encoder`` module.

``decoder="json"`` / ``encoder="json"`` (the default) and ``"avro"`` (schemaless Avro with the
schema derived from the model; needs fastavro) on the decorators use these functions. Any
callable with the same shape works as a custom codec: a decoder ``(bytes, model_type) ->
message``, an encoder ``(message) -> bytes``.
"""

from __future__ import annotations

import io
from typing import Any

from pydantic import BaseModel

from ._avro import avro_schema_of, avsc_to_pydantic, fastavro_module, to_avro_datum

__all__ = [
    "AvroBase",
    "avro_decoder",
    "avro_encoder",
    "avsc_to_pydantic",
    "json_decoder",
    "json_encoder",
]


def json_encoder(msg: BaseModel) -> bytes:
    """The model as JSON bytes."""
    return msg.model_dump_json().encode()


def json_decoder(raw_msg: bytes, cls: type[BaseModel]) -> Any:
    """JSON bytes validated as ``cls``."""
    return cls.model_validate_json(raw_msg)


def avro_encoder(msg: BaseModel) -> bytes:
    """The model as schemaless Avro, with the schema derived from its class."""
    fastavro = fastavro_module()
    schema = _parsed_schema(type(msg))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, to_avro_datum(msg.model_dump(mode="python")))
    return buffer.getvalue()


def avro_decoder(raw_msg: bytes, cls: type[BaseModel]) -> Any:
    """Schemaless Avro bytes, written with ``cls``'s schema, validated as ``cls``."""
    fastavro = fastavro_module()
    datum = fastavro.schemaless_reader(io.BytesIO(raw_msg), _parsed_schema(cls), None)
    return cls.model_validate(datum)


_PARSED: dict[type[BaseModel], Any] = {}


def _parsed_schema(model: type[BaseModel]) -> Any:
    parsed = _PARSED.get(model)
    if parsed is None:
        parsed = _PARSED[model] = fastavro_module().parse_schema(avro_schema_of(model))
    return parsed


class AvroBase(BaseModel):
    """A pydantic model that can show its Avro schema (FastKafka's base class for Avro
    messages; any model works with the "avro" codec)."""

    @classmethod
    def avro_schema(cls) -> dict[str, Any]:
        """The model's Avro record schema."""
        return avro_schema_of(cls)

    @classmethod
    def avro_schema_for_pydantic_object(cls, pydantic_model: BaseModel) -> dict[str, Any]:
        """The Avro schema of an instance's class."""
        return avro_schema_of(type(pydantic_model))

    @classmethod
    def avro_schema_for_pydantic_class(cls, pydantic_model: type[BaseModel]) -> dict[str, Any]:
        """The Avro schema of a model class."""
        return avro_schema_of(pydantic_model)
