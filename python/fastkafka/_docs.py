"""AsyncAPI documentation of a FastKafka app: ``app.create_docs()`` and ``fastkafka docs``.

Python contributes what only it knows — each function's message model as a JSON Schema
(pydantic, with ``Field`` descriptions and examples), its docstring or ``description=``, its
codec — and the engine (``_core.asyncapi_docs``, the same code that documents Rust apps)
resolves clusters into servers and channels and writes the spec and the page. Files go where
FastKafka put them: ``<root>/asyncapi/spec/asyncapi.yml`` and ``<root>/asyncapi/docs/``.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from . import _core
from ._avro import avro_schema_of
from ._handlers import ConsumerSpec, ProducerSpec

if TYPE_CHECKING:
    from ._app import FastKafka

__all__ = ["docs_paths", "write_docs"]

logger = logging.getLogger("fastkafka.docs")

AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro;version=1.9.0"


def docs_paths(root_path: str | Path | None) -> tuple[Path, Path]:
    """Where the spec file and the HTML directory go for ``root_path`` (default: the
    working directory)."""
    asyncapi = Path(root_path or ".") / "asyncapi"
    return asyncapi / "spec" / "asyncapi.yml", asyncapi / "docs"


def _message(model: type[BaseModel], codec: Any, *, batch: bool, keyed: bool) -> dict[str, Any]:
    if codec == "avro":
        return {
            "name": model.__name__,
            "payload": avro_schema_of(model),
            "content_type": "application/octet-stream",
            "schema_format": AVRO_SCHEMA_FORMAT,
            "batch": batch,
            "keyed": keyed,
        }
    return {
        "name": model.__name__,
        "payload": model.model_json_schema(),
        "batch": batch,
        "keyed": keyed,
    }


def _description(spec: ConsumerSpec | ProducerSpec) -> str | None:
    return spec.description or inspect.getdoc(spec.function)


def _functions(app: FastKafka) -> list[tuple[Any, ...]]:
    functions: list[tuple[Any, ...]] = []
    for consumed in app.consumer_specs:
        message = _message(consumed.message_type, consumed.codec, batch=consumed.batch, keyed=False)
        functions.append(
            (
                consumed.name,
                "consumes",
                consumed.topic,
                consumed.brokers,
                _description(consumed),
                message,
            )
        )
    for produced in app.producer_specs:
        message = _message(
            produced.message_type, produced.codec, batch=produced.batch, keyed=produced.keyed
        )
        functions.append(
            (
                produced.name,
                "produces",
                produced.topic,
                produced.brokers,
                _description(produced),
                message,
            )
        )
    return functions


def write_docs(
    app: FastKafka, root_path: str | Path | None = None, asyncapi_version: str = "2.6"
) -> tuple[Path, Path]:
    """Write the app's AsyncAPI spec and its HTML page under ``root_path``; returns the spec
    file and the page."""
    info: dict[str, Any] = {
        "title": app.title,
        "version": app.version,
        "description": app.description,
        "contact": app.contact,
    }
    spec, page = _core.asyncapi_docs(app.kafka_brokers, info, _functions(app), asyncapi_version)
    spec_file, docs_dir = docs_paths(root_path)
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    docs_dir.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(spec, encoding="utf-8")
    index = docs_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    logger.info(
        "AsyncAPI %s spec written to %s, its page to %s", asyncapi_version, spec_file, index
    )
    return spec_file, index
