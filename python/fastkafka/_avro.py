"""Avro schemas from pydantic models and back, for the ``"avro"`` codec.

Schemaless Avro, as FastKafka wrote it: no schema registry and no header in the payload; both
sides derive the schema from the same pydantic model. The mapping: str → string, int → long,
float → double, bool → boolean, bytes → bytes, date → int/date, time → long/time-micros,
datetime → long/timestamp-micros, UUID → string/uuid, Decimal → string, list/set/tuple → array,
dict → map (string keys), Enum → enum (its values as symbols), nested model → record,
``Optional[T]`` → ``["null", T]`` with a null default. fastavro does the encoding; it is an
optional dependency (``pip install fastkafka-rs[avro]``).
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import types
import typing
import uuid
from typing import Any

from pydantic import BaseModel, create_model

from .exceptions import ConfigError

__all__ = ["avro_schema_of", "avsc_to_pydantic", "fastavro_module"]


def fastavro_module() -> Any:
    try:
        import fastavro  # optional: imported when Avro is used
    except ImportError as error:
        raise ConfigError(
            "the 'avro' codec needs fastavro: pip install 'fastkafka-rs[avro]' (or fastavro)"
        ) from error
    return fastavro


_PRIMITIVES: dict[Any, Any] = {
    str: "string",
    int: "long",
    float: "double",
    bool: "boolean",
    bytes: "bytes",
    datetime.date: {"type": "int", "logicalType": "date"},
    datetime.time: {"type": "long", "logicalType": "time-micros"},
    datetime.datetime: {"type": "long", "logicalType": "timestamp-micros"},
    uuid.UUID: {"type": "string", "logicalType": "uuid"},
    decimal.Decimal: "string",
}


@functools.cache
def avro_schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The Avro record schema of ``model`` (computed once per model)."""
    return _record(model, set())


def _record(model: type[BaseModel], seen: set[str]) -> dict[str, Any]:
    seen.add(model.__name__)
    fields = []
    for name, field in model.model_fields.items():
        avro_type = _type(field.annotation, seen, f"{model.__name__}.{name}")
        entry: dict[str, Any] = {"name": name, "type": avro_type}
        if isinstance(avro_type, list) and avro_type[0] == "null":
            entry["default"] = None
        fields.append(entry)
    return {"type": "record", "name": model.__name__, "fields": fields}


def _type(annotation: Any, seen: set[str], where: str) -> Any:
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in arguments if a is not type(None)]
        converted = [_type(a, seen, where) for a in options]
        return ["null", *converted] if len(options) < len(arguments) else converted
    if origin in (list, set, frozenset, tuple):
        return {"type": "array", "items": _type(arguments[0], seen, where)}
    if origin is dict:
        return {"type": "map", "values": _type(arguments[1], seen, where)}
    if annotation in _PRIMITIVES:
        return _PRIMITIVES[annotation]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        if annotation.__name__ in seen:
            return annotation.__name__
        seen.add(annotation.__name__)
        symbols = [str(member.value) for member in annotation]
        return {"type": "enum", "name": annotation.__name__, "symbols": symbols}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation.__name__ in seen:
            return annotation.__name__
        return _record(annotation, seen)
    raise ConfigError(f"{where}: no Avro type for {annotation!r}")


def to_avro_datum(value: Any) -> Any:
    """A model dump ready for fastavro: enums as their symbols, decimals as strings."""
    if isinstance(value, dict):
        return {k: to_avro_datum(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_avro_datum(v) for v in value]
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


_AVRO_TO_PYTHON: dict[str, Any] = {
    "string": str,
    "long": int,
    "int": int,
    "double": float,
    "float": float,
    "boolean": bool,
    "bytes": bytes,
    "date": datetime.date,
    "time-micros": datetime.time,
    "time-millis": datetime.time,
    "timestamp-micros": datetime.datetime,
    "timestamp-millis": datetime.datetime,
    "uuid": uuid.UUID,
}


def avsc_to_pydantic(schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model for an Avro record schema (as parsed from an ``.avsc`` file)."""
    if schema.get("type") != "record":
        raise ConfigError(
            f"avsc_to_pydantic needs a record schema, got type {schema.get('type')!r}"
        )
    return _model_of(schema, {})


def _model_of(schema: dict[str, Any], named: dict[str, Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for field in schema["fields"]:
        python_type = _python_type(field["type"], named)
        default = field.get("default", ...)
        fields[field["name"]] = (python_type, default)
    model: type[BaseModel] = create_model(schema["name"], **fields)
    named[schema["name"]] = model
    return model


def _python_type(avro_type: Any, named: dict[str, Any]) -> Any:
    if isinstance(avro_type, list):
        options = [_python_type(t, named) for t in avro_type if t != "null"]
        union: Any = options[0] if len(options) == 1 else typing.Union[tuple(options)]  # noqa: UP007
        return union | None if "null" in avro_type else union
    if isinstance(avro_type, str):
        if avro_type in named:
            return named[avro_type]
        return _AVRO_TO_PYTHON[avro_type]
    logical = avro_type.get("logicalType")
    if logical in _AVRO_TO_PYTHON:
        return _AVRO_TO_PYTHON[logical]
    kind = avro_type["type"]
    if kind == "record":
        return _model_of(avro_type, named)
    if kind == "array":
        return list[_python_type(avro_type["items"], named)]  # type: ignore[misc]
    if kind == "map":
        return dict[str, _python_type(avro_type["values"], named)]  # type: ignore[misc]
    if kind == "enum":
        enumeration = enum.Enum(avro_type["name"], {s: s for s in avro_type["symbols"]})  # type: ignore[misc]
        named[avro_type["name"]] = enumeration
        return enumeration
    return _python_type(kind, named)
