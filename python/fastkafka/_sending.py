"""What calling a function decorated with ``@app.produces`` does: call it, record the call
under a Tester, and hand what it returned to the engine's producer — traced when the app is
instrumented — awaiting only when the producer queue is full (backpressure).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._handlers import ProducerSpec
from .exceptions import AppNotStartedError, ClosedError

if TYPE_CHECKING:
    from ._app import FastKafka

__all__ = ["sending_function"]


def sending_function(
    app: FastKafka, spec: ProducerSpec, function: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """The coroutine function that replaces ``function`` on ``app``: it sends what
    ``function`` returns through ``spec.producer``. The app's mock recorders and tracing are
    read per call as attributes (a call through a callable would cost each message more)."""
    producer = spec.producer
    assert producer is not None, "registered with the runtime first"

    @functools.wraps(function)
    async def send_result(*args: Any, **kwargs: Any) -> Any:
        if not producer.is_bound:
            raise AppNotStartedError(
                f"producer '{spec.name}' was called while its app is not running; "
                f"start it with `async with app:` (or fastkafka.testing.Tester)"
            )
        returned = await function(*args, **kwargs)
        if app._recorders is not None:
            side_effect = app._recorders[spec.name].record(*args, **kwargs)
            if side_effect is not None:
                await side_effect
        traced = app._tracing
        try:
            if traced is None:
                backpressure = spec.send(producer, returned)
            else:
                with traced.sending(spec, spec.count(returned)) as trace_headers:
                    backpressure = spec.send(producer, returned, trace_headers)
        except ClosedError as closed:  # the engine refuses: no second check per send
            raise AppNotStartedError(
                f"producer '{spec.name}': the app stopped before the message was sent"
            ) from closed
        if backpressure is not None:
            await backpressure  # the producer queue is full: wait for room
        return returned

    return send_result
