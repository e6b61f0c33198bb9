"""What the fault app forwards, shared by the app and the harness that feeds and reads it."""

from __future__ import annotations

from pydantic import BaseModel


class Item(BaseModel):
    id: int
    payload: str


def key_of(item_id: int) -> bytes:
    """Items are keyed by id modulo 8, so each key's order can be checked on the way out."""
    return str(item_id % 8).encode()
