"""How one consumer's batches are handled on the event loop: decode each record, record the
call under a Tester, run the handler through the consumer's executor, and report what failed.
The consumer loop in Rust hands a batch at a time to :meth:`ConsumerRunner.handle_batch` and
decides, from the report, what happens to each failure (retry, dead letter, log and skip:
``fastkafka.failures``); ``throw_exceptions=True`` fails the app instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import _core
from ._codecs import describe_decode_error, describe_error, describe_traceback
from ._events import EventMetadata, PartitionsChanged
from ._handlers import ConsumerSpec, current_deliveries
from ._mocks import CallRecorder
from ._tasks import run_concurrently
from ._threads import call_handler
from .exceptions import HandlerError
from .executors import DynamicTaskExecutor

if TYPE_CHECKING:
    from .tracing import Tracing

__all__ = ["ConsumerRunner", "RebalanceHook"]

# What on_partitions_assigned / on_partitions_revoked may be: a function or a coroutine function.
RebalanceHook = Callable[[PartitionsChanged], Awaitable[None] | None]

consumer_logger = logging.getLogger("fastkafka.consumer")

# What the handler could not process, one failure per reason (the engine's types); handle_batch
# returns None when all went well.
Failure = _core.Failure
Report = _core.BatchReport | None


class ConsumerRunner:
    """Handles the batches of one consumer: decode, record (under Tester), call through the
    consumer's executor, and deal with failures as its executor says."""

    def __init__(
        self,
        spec: ConsumerSpec,
        recorder: Callable[[], CallRecorder | None],
        fail: Callable[[BaseException], None],
        tracing: Callable[[], Tracing | None],
        hooks: tuple[RebalanceHook | None, RebalanceHook | None] = (None, None),
    ) -> None:
        # The user's on_partitions_assigned and on_partitions_revoked.
        self._hooks = {"assigned": hooks[0], "revoked": hooks[1]}
        # The mock recorder of this consumer while the app's mocks are on (Tester), else None.
        self._recorder = recorder
        # The app's OpenTelemetry spans while it is instrumented (fastkafka.tracing), else None.
        self._tracing = tracing
        # Fails the app: its first error is what wait_for_failure and `async with` report.
        self._fail = fail
        self._spec = spec
        self._with_metadata = "metadata" in spec.parameters
        # Whether a recorded call may be kept as its raw bytes and decoded again later (the
        # recorder then decodes with spec.decode: see FastKafka.create_mocks).
        self._redecode = spec.redecode is not None
        executor = spec.executor
        self._slots = (
            asyncio.Semaphore(executor.size) if isinstance(executor, DynamicTaskExecutor) else None
        )
        self._slots_size = executor.size if isinstance(executor, DynamicTaskExecutor) else 0
        # The batch being handled and the task handling it, for a stop that times out.
        self._in_flight: tuple[asyncio.Task[Any] | None, _core.RecordBatch] | None = None
        # The task abandon() cancelled: its CancelledError is the stop's, not a failure.
        self._abandoned: asyncio.Task[Any] | None = None

    @property
    def has_hooks(self) -> bool:
        """Whether the engine needs to call :meth:`partitions_changed` at all."""
        return any(hook is not None for hook in self._hooks.values())

    async def partitions_changed(
        self, kind: str, cluster: str, partitions: list[tuple[str, int]], seeker: _core.Seeker
    ) -> None:
        """Called by the engine's consumer loop between batches: the consumer was given
        (``kind`` "assigned") or lost ("revoked") ``partitions``."""
        hook = self._hooks[kind]
        if hook is None:
            return
        change = PartitionsChanged(
            consumer=self._spec.name,
            cluster=cluster,
            topic=self._spec.topic,
            partitions=[partition for _, partition in partitions],
            _seeker=seeker,
        )
        try:
            called = hook(change)
            if inspect.isawaitable(called):
                await called
        except Exception:
            # Logged here with its traceback; the consumer goes on (a hook is not a message).
            consumer_logger.exception(
                "%s: on_partitions_%s failed on partitions %s; going on",
                self._spec.name,
                kind,
                change.partitions,
            )

    async def handle_batch(
        self, records: _core.RecordBatch, deliveries: _core.DeliveryTracker
    ) -> Report:
        self._in_flight = (asyncio.current_task(), records)
        # What the handlers send now counts towards this batch (see current_deliveries).
        current_deliveries.set(deliveries)
        failures: list[Failure] = []
        try:
            stopped_after = await self._handle_batch(records, failures)
            return _core.BatchReport(stopped_after, failures) if failures else None
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

    async def _handle_batch(
        self, records: _core.RecordBatch, failures: list[Failure]
    ) -> int | None:
        """Handles ``records``, adding what fails to ``failures``; returns the index it stopped
        after, at a retryable failure (the records after it were not handled), or None."""
        spec = self._spec
        tracing = self._tracing()
        if tracing is not None:
            return await self._handle_traced(tracing, records, failures)
        if spec.batch:  # the runtime hands a batch consumer one partition per call
            await self._handle_partition_batch(records, failures)
            return None
        if self._slots is not None:  # concurrent: nothing waits for a failed record
            # A batch no larger than the executor's size never waits for a slot.
            concurrent = self._call_in_slot if len(records) > self._slots_size else self._call
            if self._with_metadata:
                prepared = (self._prepare(item, failures) for item in enumerate(records))
                calls = (call for call in prepared if call is not None)
            else:
                messages = self._messages(records, failures)
                calls = ((self._arguments(m, None), i) for i, _, m in messages)
            await run_concurrently(concurrent(a, [i], failures) for a, i in calls)
            return None
        if self._with_metadata:
            for index, record in enumerate(records):
                call = self._prepare((index, record), failures)
                if call is not None and not await self._call(call[0], [index], failures):
                    return index
            return None
        # The common case, kept tight: one message at a time, no metadata.
        recorder = self._recorder()
        function, is_async = spec.function, spec.is_async
        redecode = self._redecode
        for index, value, message in self._messages(records, failures):
            try:
                if recorder is not None:
                    side_effect = (
                        recorder.record_raw(value) if redecode else recorder.record(message)
                    )
                    if side_effect is not None:
                        await side_effect
                if is_async:
                    await function(message)
                else:
                    await call_handler(function, message)
            except Exception as error:
                if not self._handler_failed(error, [index], failures):
                    return index
        return None

    async def _handle_traced(
        self, tracing: Tracing, records: _core.RecordBatch, failures: list[Failure]
    ) -> int | None:
        """``_handle_batch`` with a span per record, or per call of a batch handler."""
        if self._spec.batch:
            with tracing.processing_batch(self._spec, records) as span:
                mine: list[Failure] = []
                await self._handle_partition_batch(records, mine)
                _mark_failed(tracing, span, mine)
                failures.extend(mine)
            return None
        if self._slots is not None:
            slots = self._slots

            async def in_slot(index: int, record: _core.Record) -> None:
                async with slots:
                    await self._traced_one(tracing, index, record, failures)

            await run_concurrently(in_slot(i, r) for i, r in enumerate(records))
            return None
        for index, record in enumerate(records):
            if not await self._traced_one(tracing, index, record, failures):
                return index
        return None

    async def _traced_one(
        self, tracing: Tracing, index: int, record: _core.Record, failures: list[Failure]
    ) -> bool:
        """Decode and handle one record in its consumer span; False if it failed with an error
        to retry."""
        with tracing.processing(self._spec, record) as span:
            mine: list[Failure] = []
            call = self._prepare((index, record), mine)
            handled = call is None or await self._call(call[0], [index], mine)
            _mark_failed(tracing, span, mine)
            failures.extend(mine)
        return handled

    def _prepare(
        self, indexed: tuple[int, _core.Record], failures: list[Failure]
    ) -> tuple[list[Any], int] | None:
        """Decode a record into the handler's arguments (None for an undecodable record,
        reported in ``failures``)."""
        index, record = indexed
        try:
            message = self._spec.decode(record.value)
        except Exception as error:
            failures.append(self._undecodable(index, record, error))
            return None
        metadata = EventMetadata.create_event_metadata(record) if self._with_metadata else None
        return self._arguments(message, metadata), index

    async def _call_in_slot(
        self, args: list[Any], indices: list[int], failures: list[Failure]
    ) -> bool:
        """:meth:`_call` in one of the executor's slots."""
        assert self._slots is not None
        async with self._slots:
            return await self._call(args, indices, failures)

    def _messages(
        self, records: _core.RecordBatch, failures: list[Failure]
    ) -> Iterator[tuple[int, bytes | None, Any]]:
        """Each decodable record's index, payload and message, in order, read from the batch's
        payloads alone (no record object per record); the others are reported in
        ``failures``."""
        decode = self._spec.decode
        for index, value in enumerate(records.values):
            try:
                message = decode(value)
            except Exception as error:
                failures.append(self._undecodable(index, records[index], error))
                continue
            yield index, value, message

    async def _call(self, args: list[Any], indices: list[int], failures: list[Failure]) -> bool:
        """Record and run one handler call for the records at ``indices``; False if it failed
        with an error to retry."""
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
            return self._handler_failed(error, indices, failures)
        return True

    async def _handle_partition_batch(
        self, records: _core.RecordBatch, failures: list[Failure]
    ) -> None:
        messages, metadata, decoded = [], [], []
        for index, record in enumerate(records):
            try:
                messages.append(self._spec.decode(record.value))
            except Exception as error:
                failures.append(self._undecodable(index, record, error))
                continue
            decoded.append(index)
            if self._with_metadata:
                metadata.append(EventMetadata.create_event_metadata(record))
        if messages:
            await self._call(self._arguments(messages, metadata), decoded, failures)

    def _arguments(self, message: Any, metadata: Any) -> list[Any]:
        """The handler's arguments in its signature's order."""
        return [message if name == "message" else metadata for name in self._spec.parameters]

    def _handler_failed(
        self, error: Exception, indices: list[int], failures: list[Failure]
    ) -> bool:
        """Report a handler's failure (or fail the app if its executor throws exceptions);
        False if the failure is to be retried."""
        deliveries = current_deliveries.get()
        if deliveries is not None:
            refusal = deliveries.take_refusal() if _is_refusal(error) else None
            if refusal is not None:
                # The producer call this handler made was refused: a delivery failure of this
                # record, retried in place until it goes (dead-lettered only by policy), never
                # a handler error to skip.
                failures.append(_core.Failure.undelivered(indices, refusal))
                return False
            if deliveries.failed:
                # A send for this batch failed and no record is to blame for it (its error was
                # swallowed, or a delivery failed): the engine reads the batch again (or
                # dead-letters it) as for any undeliverable output; the rest is moot.
                return False
        if self._spec.executor.throw_exceptions:
            self._fail(error)
            raise error
        retry = self._spec.retry
        retryable = retry is not None and retry.covers(error)
        failures.append(
            _core.Failure.handler(
                indices,
                type(error).__name__,
                describe_error(error),
                describe_traceback(error),
                retryable=retryable,
            )
        )
        return not retryable

    def _undecodable(self, index: int, record: _core.Record, error: Exception) -> Failure:
        described = describe_decode_error(error, record.value)
        model = self._spec.message_type.__name__
        return _core.Failure.undecodable(index, model, type(error).__name__, described)


def _is_refusal(error: BaseException) -> bool:
    """Whether ``error`` is, or was raised from or while handling, a send the client refused
    for the batch (the engine marks those exceptions)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if getattr(current, "fastkafka_refused", False):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _mark_failed(tracing: Tracing, span: Any, failures: list[Failure]) -> None:
    for failure in failures:
        tracing.failed(span, failure.error_type, failure.message, failure.details)
