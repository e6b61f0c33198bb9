"""What the decorators register: one spec per consumer and per producer function.

A spec is everything known about a function at decoration time — its topic, its cluster
override, its message type and codec, its client options — so that starting an app only
binds specs to clusters, and handling a message does no inspection at all.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from . import _core
from ._codecs import Decode, Encode, make_decoder, make_encoder
from ._options import ConsumerSettings
from .exceptions import ConfigError

__all__ = ["ConsumerSpec", "ProducerSpec", "topic_from_name"]


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
    brokers: _core.KafkaBrokers | None
    message_type: type[BaseModel]
    decode: Decode
    codec: str | Callable[..., Any]
    settings: ConsumerSettings
    description: str | None
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.function)

    @property
    def name(self) -> str:
        return self.function.__name__

    @classmethod
    def build(
        cls,
        function: Callable[..., Any],
        *,
        topic: str,
        brokers: _core.KafkaBrokers | None,
        decoder: str | Callable[..., Any],
        settings: ConsumerSettings,
        description: str | None,
    ) -> ConsumerSpec:
        hints = _type_hints(function)
        parameters = [p for p in inspect.signature(function).parameters if p in hints]
        models = [p for p in parameters if _is_model(hints[p])]
        if not models:
            raise ConfigError(
                f"Consumer '{function.__name__}' needs a parameter annotated with a pydantic "
                f"model (e.g. `msg: MyModel`), got annotations {hints}"
            )
        return cls(
            function=function,
            topic=topic,
            brokers=brokers,
            message_type=hints[models[0]],
            decode=make_decoder(decoder, hints[models[0]]),
            codec=decoder,
            settings=settings,
            description=description,
        )


@dataclass(eq=False)
class ProducerSpec:
    """A function decorated with ``@app.produces``; ``cluster`` is bound while the app runs."""

    function: Callable[..., Any]
    topic: str
    brokers: _core.KafkaBrokers | None
    message_type: type[BaseModel]
    encode: Encode
    codec: str | Callable[..., Any]
    properties: dict[str, str]
    description: str | None
    cluster: _core.Cluster | None = None

    @property
    def name(self) -> str:
        return self.function.__name__

    @classmethod
    def build(
        cls,
        function: Callable[..., Any],
        *,
        topic: str,
        brokers: _core.KafkaBrokers | None,
        encoder: str | Callable[..., Any],
        properties: dict[str, str],
        description: str | None,
    ) -> ProducerSpec:
        if not inspect.iscoroutinefunction(function):
            raise ConfigError(
                f"Producer '{function.__name__}' must be an `async def` function: calling it "
                f"sends a message, which the app does on its event loop"
            )
        returned = _type_hints(function).get("return")
        model: Any = _list_item(returned) if _list_item(returned) is not None else returned
        if not _is_model(model):
            raise ConfigError(
                f"Producer '{function.__name__}' must declare its return type as a pydantic "
                f"model or a list of one (e.g. `-> MyModel`), got {returned!r}"
            )
        return cls(
            function=function,
            topic=topic,
            brokers=brokers,
            message_type=model,
            encode=make_encoder(encoder, model),
            codec=encoder,
            properties=properties,
            description=description,
        )

    def send(self, cluster: _core.Cluster, returned: Any) -> None:
        """Send a producer's return value: one record, or a list as one batch."""
        if isinstance(returned, list):
            cluster.produce(self.topic, [(None, self.encode(item), None) for item in returned])
        elif returned is not None:
            cluster.send(self.topic, self.encode(returned))
