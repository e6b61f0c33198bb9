"""How one consumer's batches are handled on the event loop: decode each record, record the
call under a Tester, run the handler through the consumer's executor, and deal with failures
as the executor says (log and go on, or fail the app). The consumer loop in Rust hands a batch
at a time to :meth:`ConsumerRunner.handle_batch`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from . import _core
from ._codecs import describe_decode_error
from ._events import EventMetadata
from ._handlers import ConsumerSpec, current_deliveries
from ._mocks import CallRecorder
from ._threads import call_handler
from .exceptions import HandlerError
from .executors import DynamicTaskExecutor

__all__ = ["ConsumerRunner"]

consumer_logger = logging.getLogger("fastkafka.consumer")


class ConsumerRunner:
    """Handles the batches of one consumer: decode, record (under Tester), call through the
    consumer's executor, and deal with failures as its executor says."""

    def __init__(
        self,
        spec: ConsumerSpec,
        recorder: Callable[[], CallRecorder | None],
        fail: Callable[[BaseException], None],
    ) -> None:
        # The mock recorder of this consumer while the app's mocks are on (Tester), else None.
        self._recorder = recorder
        # Fails the app: its first error is what wait_for_failure and `async with` report.
        self._fail = fail
        self._spec = spec
        self._with_metadata = "metadata" in spec.parameters
        # A named codec is pure, so a recorded call can decode the raw bytes again later; a
        # custom decoder may have effects of its own and runs once per record.
        self._redecode = isinstance(spec.codec, str)
        executor = spec.executor
        self._slots = (
            asyncio.Semaphore(executor.size) if isinstance(executor, DynamicTaskExecutor) else None
        )
        # The batch being handled and the task handling it, for a stop that times out.
        self._in_flight: tuple[asyncio.Task[Any] | None, list[_core.Record]] | None = None
        # The task abandon() cancelled: its CancelledError is the stop's, not a failure.
        self._abandoned: asyncio.Task[Any] | None = None

    async def handle_batch(
        self, records: list[_core.Record], deliveries: _core.DeliveryTracker
    ) -> None:
        self._in_flight = (asyncio.current_task(), records)
        # What the handlers send now counts towards this batch (see current_deliveries).
        current_deliveries.set(deliveries)
        try:
            await self._handle_batch(records)
        except Exception:
            raise  # throw_exceptions=True: already reported by _handler_failed
        except BaseException as error:
            if self._abandoned is not None and self._abandoned is asyncio.current_task():
                raise HandlerError(f"{self._spec.name}: batch abandoned at stop") from error
            # SystemExit, KeyboardInterrupt or a stray CancelledError must not escape into the
            # event loop (asyncio re-raises the first two out of it): the app fails with it,
            # and the consumer loop stops on the HandlerError raised here instead.
            self._fail(error)
            raise HandlerError(f"{self._spec.name}: handler raised {error!r}") from error
        finally:
            self._in_flight = None

    def abandon(self, waited: float) -> None:
        """Stopping waited ``waited`` seconds for the batch in flight: log it and cancel it,
        so that its consumer loop ends without storing its offsets."""
        in_flight = self._in_flight
        if in_flight is None:
            return
        task, records = in_flight
        self._abandoned = task
        consumer_logger.error(
            "%s: still handling a batch of %d record(s) %.1f s after stop was asked (first "
            "topic=%s partition=%d offset=%d); abandoning it: its offsets are not committed "
            "and it will be consumed again",
            self._spec.name,
            len(records),
            waited,
            records[0].topic,
            records[0].partition,
            records[0].offset,
        )
        if task is not None:
            task.cancel()

    async def _handle_batch(self, records: list[_core.Record]) -> None:
        spec = self._spec
        if spec.batch:  # the runtime hands a batch consumer one partition per call
            await self._handle_partition_batch(records)
            return
        if self._slots is not None or self._with_metadata:
            calls = [c for c in map(self._prepare, records) if c is not None]
            if self._slots is None:
                for args, record in calls:
                    await self._call(args, record)
            else:
                await asyncio.gather(*(self._call_in_slot(a, r) for a, r in calls))
            return
        # The common case, kept tight: one message at a time, no metadata.
        recorder = self._recorder()
        decode, function, is_async = spec.decode, spec.function, spec.is_async
        redecode = self._redecode
        for record in records:
            value = record.value
            try:
                message = decode(value)
            except Exception as error:
                self._log_undecodable(record, error)
                continue
            try:
                if recorder is not None:
                    side_effect = (
                        recorder.record_encoded(decode, value)
                        if redecode
                        else recorder.record(message)
                    )
                    if side_effect is not None:
                        await side_effect
                if is_async:
                    await function(message)
                else:
                    await call_handler(function, message)
            except Exception as error:
                self._handler_failed(error, record, [record])

    def _prepare(self, record: _core.Record) -> tuple[list[Any], _core.Record] | None:
        """Decode a record into the handler's arguments (None for an undecodable record)."""
        try:
            message = self._spec.decode(record.value)
        except Exception as error:
            self._log_undecodable(record, error)
            return None
        metadata = EventMetadata.create_event_metadata(record) if self._with_metadata else None
        return self._arguments(message, metadata), record

    async def _call_in_slot(self, args: list[Any], record: _core.Record) -> None:
        assert self._slots is not None
        async with self._slots:
            await self._call(args, record)

    async def _call(self, args: list[Any], first: _core.Record, *rest: _core.Record) -> None:
        """Record and run one handler call; a failure is logged, or raised if the executor
        throws exceptions."""
        try:
            recorder = self._recorder()
            if recorder is not None:
                side_effect = recorder.record(*args)
                if side_effect is not None:
                    await side_effect
            if self._spec.is_async:
                await self._spec.function(*args)
            else:
                await call_handler(self._spec.function, *args)
        except Exception as error:
            self._handler_failed(error, first, [first, *rest])

    async def _handle_partition_batch(self, records: list[_core.Record]) -> None:
        messages, metadata = [], []
        for record in records:
            try:
                messages.append(self._spec.decode(record.value))
            except Exception as error:
                self._log_undecodable(record, error)
                continue
            if self._with_metadata:
                metadata.append(EventMetadata.create_event_metadata(record))
        if messages:
            await self._call(self._arguments(messages, metadata), *records)

    def _arguments(self, message: Any, metadata: Any) -> list[Any]:
        """The handler's arguments in its signature's order."""
        return [message if name == "message" else metadata for name in self._spec.parameters]

    def _handler_failed(
        self, error: Exception, first: _core.Record, records: list[_core.Record]
    ) -> None:
        if self._spec.executor.throw_exceptions:
            self._fail(error)
            raise error
        offsets = (
            f"offset={first.offset}"
            if len(records) == 1
            else f"offsets {records[0].offset}-{records[-1].offset}"
        )
        consumer_logger.error(
            "%s: handler failed (topic=%s partition=%d %s); going on with the next record",
            self._spec.name,
            first.topic,
            first.partition,
            offsets,
            exc_info=error,
        )

    def _log_undecodable(self, record: _core.Record, error: Exception) -> None:
        consumer_logger.error(
            "%s: skipping a record that cannot be decoded as %s "
            "(topic=%s partition=%d offset=%d): %s",
            self._spec.name,
            self._spec.message_type.__name__,
            record.topic,
            record.partition,
            record.offset,
            describe_decode_error(error, record.value),
        )
