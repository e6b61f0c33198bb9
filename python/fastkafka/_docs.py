"""AsyncAPI documentation of a FastKafka app: ``app.create_docs()`` and ``fastkafka docs``.

The app's runtime is its one registry: each decorator registers there its topic, cluster,
description and a way to make its message's schema (:func:`message_doc`, called only when docs
are written). The engine (``Runtime.asyncapi_docs``, the same code that documents Rust apps)
resolves clusters into servers and channels and writes the spec and the page; this module
contributes what only Python knows — a model's JSON Schema (pydantic, with ``Field``
descriptions and examples) or Avro schema — and puts the files where FastKafka put them:
``<root>/asyncapi/spec/asyncapi.yml`` and ``<root>/asyncapi/docs/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import FastKafka
    from ._handlers import ConsumerSpec, ProducerSpec

__all__ = ["docs_paths", "message_doc", "write_docs"]

logger = logging.getLogger("fastkafka.docs")

AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro;version=1.9.0"


def docs_paths(root_path: str | Path | None) -> tuple[Path, Path]:
    """Where the spec file and the HTML directory go for ``root_path`` (default: the
    working directory)."""
    asyncapi = Path(root_path or ".") / "asyncapi"
    return asyncapi / "spec" / "asyncapi.yml", asyncapi / "docs"


def message_doc(spec: ConsumerSpec | ProducerSpec) -> dict[str, Any]:
    """What the docs say of a function's messages: its model's name and schema, whether it
    takes or returns a batch and whether it sets keys (the engine's ``MessageDoc``)."""
    model = spec.message_type
    keyed = getattr(spec, "keyed", False)
    if spec.codec == "avro":
        from ._avro import avro_schema_of  # only apps that speak Avro need it

        return {
            "name": model.__name__,
            "payload": avro_schema_of(model),
            "content_type": "application/octet-stream",
            "schema_format": AVRO_SCHEMA_FORMAT,
            "batch": spec.batch,
            "keyed": keyed,
        }
    return {
        "name": model.__name__,
        "payload": model.model_json_schema(),
        "batch": spec.batch,
        "keyed": keyed,
    }


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
    spec, page = app._runtime.asyncapi_docs(info, asyncapi_version)
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
