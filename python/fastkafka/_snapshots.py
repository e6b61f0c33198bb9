"""What a recorded call keeps until a test looks at it, and how it becomes a call again.

A busy test keeps every pending call until the end, so the shape of what each keeps is what
costs: each object the garbage collector must keep walking, and each new allocation kept
alive, slowed the Tester's round trip more than building the snapshots did. So the usual
message — one model whose fields hold immutable values — is kept as a tuple of its field
values and its class's index, which the collector stops tracking at its first pass
(:func:`fields_snapshot`); arguments that are such models (extra fields allowed) or immutable
values are kept as copies of their fields (:func:`flat_snapshot`). Either is as good as a deep
copy, which the caller makes of anything else, and far cheaper. :func:`restore` rebuilds the
models as pydantic's own ``__copy__`` does, without validating again.
"""

from __future__ import annotations

import datetime
import decimal
import operator
import threading
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

__all__ = ["Snapshot", "fields_snapshot", "flat_snapshot", "restore"]

# What record() keeps of a call (see CallRecorder in _mocks for the kinds).
Snapshot = Any
# Marks a flat model without extra fields: (_FIELDS, its class's index in _LAYOUTS, its field
# values, the names of the fields set or None for all). Only the class's index, not the class:
# a tuple holding a class stays tracked by the garbage collector; this one is dropped from its
# watch at its first pass.
_FIELDS = object()
# Marks a flat model with extra fields among a flat snapshot's parts: (_MODEL, model class,
# field values, names of the fields set, extra fields or None). A plain tuple: a NamedTuple
# cost 0.5 us more per recorded call, and names in a tuple (not a set) are dropped from the
# garbage collector's watch at its first pass, where a set stays tracked while it is pending.
_MODEL = object()

# Values a snapshot may share with the caller: nothing the caller does later can change them.
_IMMUTABLE = frozenset(
    {
        str, int, float, bool, bytes, type(None), complex, decimal.Decimal, uuid.UUID,
        datetime.datetime, datetime.date, datetime.time, datetime.timedelta,
    }
)  # fmt: skip


class _Layout:
    """How a fields snapshot of one model class is taken and turned back into a model: the
    field values in declaration order, read with one C call."""

    def __init__(self, model_class: type[BaseModel], index: int) -> None:
        self.model_class = model_class
        self.index = index
        self.names = tuple(model_class.model_fields)
        self.name_set = frozenset(self.names)
        # The field values in declaration order; for one field (itemgetter of one name) the
        # value itself, not a 1-tuple.
        self.values_of: Callable[[dict[str, Any]], Any] = operator.itemgetter(*self.names)
        self.one_field = len(self.names) == 1


# The layouts of the model classes snapshotted so far, by class and by index.
_LAYOUT_OF: dict[type, _Layout | None] = {}
_LAYOUTS: list[_Layout] = []
_LAYOUTS_LOCK = threading.Lock()


def _layout(kind: type) -> _Layout | None:
    """The layout of model class ``kind`` (None for anything else), made on first use."""
    try:
        return _LAYOUT_OF[kind]
    except KeyError:
        pass
    with _LAYOUTS_LOCK:  # two threads must not give two classes one index
        if kind not in _LAYOUT_OF:
            layout = None
            if issubclass(kind, BaseModel) and kind.model_fields:
                layout = _Layout(kind, len(_LAYOUTS))
                _LAYOUTS.append(layout)
            _LAYOUT_OF[kind] = layout
        return _LAYOUT_OF[kind]


def fields_snapshot(message: Any) -> Snapshot | None:
    """A snapshot of ``message`` as its field values (see _FIELDS), when it is a model whose
    fields all hold immutable values and that has no extra or private attributes; else None."""
    layout = _layout(type(message))
    if layout is None:
        return None
    if message.__pydantic_extra__ is not None or message.__pydantic_private__ is not None:
        return None
    fields = message.__dict__
    if len(fields) != len(layout.names):
        return None  # a field deleted, or model_construct() without one
    try:
        values = layout.values_of(fields)
    except KeyError:  # an attribute set around pydantic in place of a field
        return None
    if layout.one_field:
        if type(values) not in _IMMUTABLE:
            return None
    else:
        for value in values:
            if type(value) not in _IMMUTABLE:
                return None
    fields_set = message.__pydantic_fields_set__
    every = fields_set == layout.name_set
    return (_FIELDS, layout.index, values, None if every else tuple(fields_set))


def flat_snapshot(args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """What restores ``args`` as they are now, when each is an immutable value or a pydantic
    model whose fields (and extra fields) all hold immutable values: copying such a model's
    fields is a snapshot, as a deep copy would be. None for anything else (nested models,
    lists, private attributes), which the caller deep-copies."""
    parts = []
    for arg in args:
        kind = type(arg)
        if kind in _IMMUTABLE:
            parts.append(arg)
            continue
        fields_only = fields_snapshot(arg)
        if fields_only is not None:
            parts.append(fields_only)
            continue
        if not isinstance(arg, BaseModel) or arg.__pydantic_private__ is not None:
            return None
        fields, extra = arg.__dict__, arg.__pydantic_extra__
        for value in fields.values():
            if type(value) not in _IMMUTABLE:
                return None
        if extra:
            for value in extra.values():
                if type(value) not in _IMMUTABLE:
                    return None
        fields_set = tuple(arg.__pydantic_fields_set__)
        parts.append(
            (_MODEL, kind, fields.copy(), fields_set, None if extra is None else extra.copy())
        )
    return tuple(parts)


def restore(part: Any) -> Any:
    """The value ``part`` of a snapshot stands for: a model is rebuilt as pydantic's own
    ``__copy__`` builds one, without validating again."""
    if type(part) is not tuple:
        return part
    if part[0] is _FIELDS:
        _, index, values, fields_set = part
        layout = _LAYOUTS[index]
        if layout.one_field:
            values = (values,)
        fields = dict(zip(layout.names, values, strict=True))
        names_set = layout.names if fields_set is None else fields_set
        return _model(layout.model_class, fields, names_set, None)
    if part[0] is _MODEL:
        _, model_class, fields, fields_set, extra = part
        return _model(model_class, fields, fields_set, extra)
    return part


def _model(
    model_class: type[BaseModel], fields: dict[str, Any], fields_set: tuple[str, ...], extra: Any
) -> BaseModel:
    model = model_class.__new__(model_class)
    object.__setattr__(model, "__dict__", fields)
    object.__setattr__(model, "__pydantic_fields_set__", set(fields_set))
    object.__setattr__(model, "__pydantic_extra__", extra)
    object.__setattr__(model, "__pydantic_private__", None)
    return model
