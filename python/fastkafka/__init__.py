"""fastkafka: Kafka services in Python with a Rust engine.

FastKafka's API — ``@app.consumes``, ``@app.produces``, pydantic messages, ``Tester`` — over a
Rust core that owns Kafka I/O, batching and offsets. Where to find things:

- :class:`FastKafka` (``_app``): the application and its decorators, a facade over the
  engine's app runtime (``_core.Runtime``: registrations, client options, start and stop);
  ``_lifecycle`` is one run of it (background tasks, the first failure) and the transport it
  runs on, ``_runner`` handles one consumer's batches (and rebalance hooks) on the event loop,
  ``_sending`` is what calling a producer does, ``_tasks`` ties the tasks a handler starts to
  its input, ``_benchmark`` counts ``@app.benchmark``;
- :class:`KafkaEvent`, :class:`EventMetadata` (``_events``): keys, headers and metadata;
  :class:`PartitionsChanged`, what rebalance hooks are told;
- ``fastkafka.executors``: how a consumer's handler calls run (one at a time, or concurrently);
- ``fastkafka.encoder``: FastKafka's Avro helpers (``_avro``: the optional fastavro import);
- ``fastkafka.testing``: ``Tester`` runs apps on the in-memory broker, with mirrors (which the
  engine derives from the apps' registrations; ``_mirrors`` encodes, decodes and records) and
  mocks;
- ``fastkafka.exceptions``: every error fastkafka raises;
- ``fastkafka.failures``: :class:`RetryPolicy` and dead letters — what a consumer does with
  messages it cannot process (decided by the engine, ``src/consumer_loop/failures.rs``);
- ``fastkafka.metrics`` (Prometheus text of the engine's figures), ``fastkafka.health``
  (liveness and readiness, computed by the engine: ``app.health()``) and ``fastkafka.tracing``
  (OpenTelemetry spans and ``traceparent`` headers, optional);
- ``_docs``: AsyncAPI docs (``app.create_docs()``, ``fastkafka docs``), written by the engine
  from the registrations (the runtime is an app's one registry); here, a model's schema;
- ``_handlers`` (what a decorator records), ``_codecs`` (bytes <-> messages), ``_mocks``
  (real mocks, recorded lazily, and waiting assertions) with ``_snapshots`` (what a recorded
  call keeps until a test looks), ``_threads`` (the thread pools for blocking work);
- ``_cli`` (the ``fastkafka`` command: ``run``, ``docs``, ``offsets`` in ``_offsets``,
  ``testing``), ``_worker`` (one
  worker process of ``fastkafka run``), ``_serving`` (the command's metrics and health
  server, from files its workers write), ``_importer`` (``module:app`` imports);
- ``_core``: the Rust extension module (``src/python/``); its types are in ``_core.pyi``.
"""

import atexit

from . import _core
from ._app import FastKafka
from ._core import __version__, librdkafka_version
from ._events import EventMetadata, KafkaEvent, PartitionsChanged
from .failures import RetryPolicy

# Engine threads must not enter Python while the interpreter shuts down.
atexit.register(_core.close_python_entries)

__all__ = [
    "EventMetadata",
    "FastKafka",
    "KafkaEvent",
    "PartitionsChanged",
    "RetryPolicy",
    "__version__",
    "librdkafka_version",
]
