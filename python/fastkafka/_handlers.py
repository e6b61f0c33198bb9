"""What the decorators register: one spec per consumer and per producer function.

A spec is what only Python knows about a function — its message type and codec, the parameters
it takes — found once at decoration time so that handling a message does no inspection at all.
Everything else a decorator declares (cluster, client options, retry attempts, dead-letter
topic, description) is registered with the runtime (``_core.Runtime``), the app's one
registry; a producer spec holds the runtime's ``_core.Producer``, which sends while the app
runs.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from . import _core
from ._codecs import Decode, Encode, make_decoder, make_encoder, make_instance_encoder
from ._events import EventMetadata, KafkaEvent, normalize_headers
from .exceptions import ConfigError
from .executors import DynamicTaskExecutor, Executor, SequentialExecutor
from .failures import RetryPolicy

__all__ = [
    "ConsumerSpec",
    "ProducerSpec",
    "current_deliveries",
    "hand_over",
    "topic_from_name",
]

# The deliveries of the batch whose handler is running in this context (set by the consumer's
# runner): what a producer sends from a handler counts towards that batch, whose offsets are
# stored only once it is all acknowledged. Tasks a handler starts inherit it.
current_deliveries: ContextVar[_core.DeliveryTracker | None] = ContextVar(
    "fastkafka_current_deliveries", default=None
)


def topic_from_name(function: Callable[..., Any], topic: str | None, prefix: str) -> str:
    """The topic a decorator binds: given, or the function's name without ``prefix``."""
    if topic is not None:
        return topic
    name = function.__name__
    if not name.startswith(prefix) or len(name) == len(prefix):
        raise ConfigError(
            f"Function name '{name}' must start with the prefix '{prefix}' followed by the "
            f"topic name, or pass topic= to the decorator"
        )
    return name[len(prefix) :]


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except NameError as error:
        raise ConfigError(
            f"Cannot resolve the annotations of '{function.__name__}': {error}. Define the "
            f"message model where the function's module can see it (string annotations, e.g. "
            f"from `from __future__ import annotations`, are resolved in the module's globals)"
        ) from error


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def _message_model(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The pydantic model a message parameter is annotated with, and whether it takes None
    (``Model | None``, ``Optional[Model]``: a tombstone then reaches the handler as None)."""
    if _is_model(annotation):
        return annotation, False
    arguments = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(arguments) == 2:
        models = [argument for argument in arguments if argument is not type(None)]
        if len(models) == 1 and _is_model(models[0]):
            return models[0], True
    return None


def _list_item(annotation: Any) -> Any:
    """``T`` for ``list[T]`` / ``List[T]``, else None."""
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (None,)
        return item
    return None


@dataclass(eq=False)
class ConsumerSpec:
    """A function decorated with ``@app.consumes``."""

    function: Callable[..., Any]
    topic: str
    message_type: type[BaseModel]
    decode: Decode
    codec: str | Callable[..., Any]
    # The handler's parameters we fill, in signature order: "message" and maybe "metadata".
    parameters: tuple[str, ...] = ("message",)
    # Whether the handler takes a list of messages (one call per polled batch and partition).
    batch: bool = False
    executor: Executor = field(default_factory=SequentialExecutor)
    # Which failures are retried in place (the engine keeps the rest of the policy and the
    # dead-letter topic; see fastkafka.failures).
    retry: RetryPolicy | None = None
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.function)

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def redecode(self) -> Decode | None:
        """``decode`` if it may run again on a record it decoded (a named codec is pure), else
        None (a custom decoder may have effects of its own and runs once per record)."""
        return self.decode if isinstance(self.codec, str) else None

    @classmethod
    def build(
        cls,
        function: Callable[..., Any],
        *,
        topic: str,
        decoder: str | Callable[..., Any],
        executor: Executor,
        retry: RetryPolicy | None = None,
    ) -> ConsumerSpec:
        hints = _type_hints(function)
        message_param = metadata_param = None
        message_type: Any = None
        batch = metadata_batch = nullable = False
        for name in inspect.signature(function).parameters:
            annotation = hints.get(name)
            item = _list_item(annotation)
            if annotation is EventMetadata or item is EventMetadata:
                metadata_param, metadata_batch = name, item is EventMetadata
            elif message_param is None:
                single, each = _message_model(annotation), _message_model(item)
                if single is not None or each is not None:
                    message_param, batch = name, each is not None
                    message_type, nullable = each or single  # type: ignore[misc]
        if message_param is None:
            raise ConfigError(
                f"Consumer '{function.__name__}' needs a parameter annotated with a pydantic "
                f"model, optionally `| None`, or a list of one (e.g. `msg: MyModel`), got "
                f"annotations {hints}"
            )
        if metadata_param is not None and metadata_batch != batch:
            raise ConfigError(
                f"Consumer '{function.__name__}': a batch consumer takes list[EventMetadata], a "
                f"single-message consumer takes EventMetadata"
            )
        filled = {message_param: "message", metadata_param: "metadata"}
        parameters = tuple(
            filled[name] for name in inspect.signature(function).parameters if name in filled
        )
        return cls(
            function=function,
            topic=topic,
            message_type=message_type,
            decode=make_decoder(decoder, message_type, tombstone_is_none=nullable),
            codec=decoder,
            parameters=parameters,
            batch=batch,
            executor=executor,
            retry=retry,
        )


@dataclass(eq=False)
class ProducerSpec:
    """A function decorated with ``@app.produces``; ``producer`` sends while the app runs."""

    function: Callable[..., Any]
    topic: str
    message_type: type[BaseModel]
    encode: Encode
    # encode, for a message_type instance (the common case).
    encode_instance: Encode
    codec: str | Callable[..., Any]
    # Whether it returns a list (one batch per call) and a KafkaEvent (with a key), as
    # declared: what the AsyncAPI docs say of its messages.
    batch: bool = False
    keyed: bool = False
    # Set right after decoration, when the function is registered with the app's runtime.
    producer: _core.Producer | None = None

    @property
    def name(self) -> str:
        return self.function.__name__

    @classmethod
    def build(
        cls,
        function: Callable[..., Any],
        *,
        topic: str,
        encoder: str | Callable[..., Any],
    ) -> ProducerSpec:
        if not inspect.iscoroutinefunction(function):
            raise ConfigError(
                f"Producer '{function.__name__}' is a synchronous function: synchronous "
                f"functions are not supported for produce operations; declare it `async def`"
            )
        returned = _type_hints(function).get("return")
        model: Any = returned
        keyed = typing.get_origin(model) is KafkaEvent
        if keyed:
            (model,) = typing.get_args(model) or (None,)
        batch = _list_item(model) is not None
        if batch:
            model = _list_item(model)
        if not _is_model(model):
            raise ConfigError(
                f"Producer '{function.__name__}' must declare its return type as a pydantic "
                f"model, a list of one or a KafkaEvent of either (e.g. `-> MyModel`), "
                f"got {returned!r}"
            )
        return cls(
            function=function,
            topic=topic,
            message_type=model,
            encode=make_encoder(encoder, model),
            encode_instance=make_instance_encoder(encoder, model),
            codec=encoder,
            batch=batch,
            keyed=keyed,
        )

    def send(
        self,
        producer: _core.Producer,
        returned: Any,
        trace_headers: list[tuple[str, bytes]] | None = None,
    ) -> Awaitable[None] | None:
        """Send a producer's return value: one record, or a list as one batch; a KafkaEvent
        adds its key and headers to each record, and ``trace_headers`` (fastkafka.tracing)
        replace any of the same name. Called from a consumer's handler, the records count
        towards that batch's deliveries. Returns an awaitable to await when the producer queue
        is full (backpressure), else None."""
        tracker = current_deliveries.get()
        if trace_headers is None and isinstance(returned, self.message_type):
            return producer.send(self.encode_instance(returned), None, tracker)  # the common case
        if isinstance(returned, KafkaEvent):
            key, headers = (
                returned.key,
                _with_trace(normalize_headers(returned.headers), trace_headers),
            )
            items = returned.message if isinstance(returned.message, list) else [returned.message]
            return producer.produce([(key, self.encode(item), headers) for item in items], tracker)
        if isinstance(returned, list):
            return producer.produce(
                [(None, self.encode(item), trace_headers) for item in returned], tracker
            )
        if returned is None:
            return None
        if trace_headers:
            return producer.produce([(None, self.encode(returned), trace_headers)], tracker)
        return producer.send(self.encode(returned), None, tracker)

    @staticmethod
    def count(returned: Any) -> int:
        """How many records ``send`` makes of a return value."""
        message = returned.message if isinstance(returned, KafkaEvent) else returned
        if isinstance(message, list):
            return len(message)
        return 0 if message is None else 1


def _with_trace(
    headers: list[tuple[str, bytes]] | None, trace_headers: list[tuple[str, bytes]] | None
) -> list[tuple[str, bytes]] | None:
    if not trace_headers:
        return headers
    replaced = {name for name, _ in trace_headers}
    return [pair for pair in headers or () if pair[0] not in replaced] + trace_headers


def hand_over(spec: ConsumerSpec, executor: Executor) -> _core._HandOver:
    """How many records each call of a consumer's handler gets (the engine's ``HandOver``)."""
    if spec.batch:
        return "one_partition"  # a batch handler sees one partition's records, in order
    if isinstance(executor, DynamicTaskExecutor):
        return "up_to_max_poll_records"  # a call's records are all in flight at once
    # One message after another: the size is invisible to it, so the engine sizes it to its
    # speed, saving thread wake-ups per hand-over.
    return "sized_to_handler"
