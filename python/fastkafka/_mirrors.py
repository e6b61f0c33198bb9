"""The Tester's mirrors, Python's side: the engine decides which mirrors the apps need
(``_core.mirror_runtime``: for each (topic, cluster) the apps consume, a producer that feeds
them; for each one they produce to, a consumer that reads it back) and runs them; here each
encodes or decodes with the codec of the functions it serves and records its calls in a
:class:`~fastkafka._mocks.CallRecorder` for ``tester.mocks``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pydantic_core
from pydantic import BaseModel

from . import _core
from ._codecs import Decode, describe_decode_error, make_decoder, make_encoder
from ._handlers import ConsumerSpec
from ._mocks import AwaitedMock, CallRecorder

__all__ = ["MirrorConsumer", "MirrorProducer", "mirror_codec"]

logger = logging.getLogger("fastkafka.testing")


def mirror_codec(codec: str | Callable[..., Any]) -> str:
    """The codec a mirror speaks: a named one as is; a custom one has no known inverse, so
    its mirror speaks JSON."""
    return codec if isinstance(codec, str) else "json"


class MirrorProducer:
    """Sends messages to the (topic, cluster) that app consumers read, and records each call
    in ``tester.mocks.to_<topic>``."""

    def __init__(self, mirror: _core.Mirror, producer: _core.Producer, spec: ConsumerSpec) -> None:
        self.mirror = mirror
        self._producer = producer
        self.topic = mirror.topic
        # The app functions this mirror serves (several apps may consume one topic).
        self.functions = [function for _, function in mirror.serves]
        self._model = spec.message_type
        # Only a named codec has a known encoder for the consumer's decoder.
        self._encode = make_encoder(spec.codec, spec.message_type) if spec.codec == "avro" else None
        # Decodes what this mirror encodes: a sent message that is not a flat model is
        # recorded as its bytes, decoded again when a test looks (cheaper than a deep copy).
        decode = make_decoder(mirror_codec(spec.codec), spec.message_type)
        self.recorder = CallRecorder(mirror.name, decode=decode)
        self.__name__ = mirror.name

    @property
    def bootstrap_servers(self) -> str | None:
        """The cluster this mirror sends to (None while the Tester is not entered)."""
        return self._producer.bootstrap_servers

    async def __call__(self, message: Any, key: bytes | None = None) -> Any:
        """Send ``message`` (a list is sent as one batch) and return it."""
        if key is None and type(message) is self._model:  # the common case, kept short
            value = self._encoded(message)
            side_effect = self.recorder.record_message(message, value)
            if side_effect is not None:
                await side_effect
            backpressure = self._producer.send(value)
        else:
            items = message if isinstance(message, list) else [message]
            encoded = [self._encoded(item) for item in items]
            if key is None:
                side_effect = self.recorder.record(message)
            else:
                side_effect = self.recorder.record(message, key)
            if side_effect is not None:
                await side_effect
            backpressure = self._producer.produce([(key, value, None) for value in encoded])
        if backpressure is not None:
            await backpressure
        return message

    def _encoded(self, item: Any) -> bytes:
        """What the consumer's codec makes of an object of its declared type; anything else —
        another model, a dict, an unvalidated ``model_construct`` — as its JSON, so tests can
        send the bad input an app must survive. ``bytes`` are sent as they are."""
        if self._encode is not None and isinstance(item, self._model):
            return self._encode(item)
        if isinstance(item, bytes | bytearray):
            return bytes(item)
        if isinstance(item, BaseModel):
            encoded: bytes = item.__pydantic_serializer__.to_json(item, warnings=False)
            return encoded
        return pydantic_core.to_json(item)


class MirrorConsumer:
    """Reads the (topic, cluster) app producers write to and records each message in
    ``tester.mocks.on_<topic>``."""

    def __init__(self, mirror: _core.Mirror, decode: Decode) -> None:
        self.mirror = mirror
        self.topic = mirror.topic
        # The app functions this mirror serves (several apps may produce to one topic).
        self.functions = [function for _, function in mirror.serves]
        self._decode = decode
        self.recorder = CallRecorder(mirror.name, decode=decode)
        self.awaited = AwaitedMock(self.recorder)

    async def handle_batch(
        self, records: _core.RecordBatch, deliveries: _core.DeliveryTracker
    ) -> None:
        for index, value in enumerate(records.values):
            try:
                self._decode(value)
            except Exception as error:
                record = records[index]
                logger.error(
                    "%s: the app produced a record that cannot be decoded "
                    "(topic=%s partition=%d offset=%d): %s",
                    self.recorder.name,
                    record.topic,
                    record.partition,
                    record.offset,
                    describe_decode_error(error, value),
                )
                continue
            side_effect = self.recorder.record_raw(value)
            if side_effect is not None:
                await side_effect
