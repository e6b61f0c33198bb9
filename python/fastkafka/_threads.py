"""The threads fastkafka runs blocking work on, kept apart from asyncio's default executor.

Lifecycle calls into the engine (subscribe, stop, flush) block a thread until the engine is
done, and stopping a consumer waits for its batch in flight — which, for a plain ``def``
handler, itself needs a thread. Sharing asyncio's small default pool (``min(32, CPUs + 4)``
threads) between the two let enough consumers stopping at once take every thread and wait
forever for handlers that could not get one. So each kind of work has its own pool, and the
application's own ``asyncio.to_thread`` calls never compete with fastkafka's.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["call_handler", "run_lifecycle"]

T = TypeVar("T")

# Lifecycle calls only ever wait for handlers and the engine, never for each other, so the pool
# bounds concurrency without any risk of waiting on itself.
_LIFECYCLE = ThreadPoolExecutor(max_workers=64, thread_name_prefix="fastkafka-lifecycle")
_HANDLERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="fastkafka-handler")


async def run_lifecycle(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking engine call (subscribe, stop, flush) on a lifecycle thread."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_LIFECYCLE, functools.partial(function, *args, **kwargs))


async def call_handler(function: Callable[..., T], *args: Any) -> T:
    """Run a plain ``def`` handler on a handler thread, in the caller's context (as
    ``asyncio.to_thread`` would)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(_HANDLERS, functools.partial(context.run, function, *args))
