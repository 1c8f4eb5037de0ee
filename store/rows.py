"""Decoding the run store's rows: every JSON column and every chunk blob is read through here.

A run store can be damaged (a disk that flips bits, a page zeroed by a crash of the file
system, a hand edit). Whatever is wrong with a row, decoding it raises one error,
:class:`StoreDamaged`, whose message names the row and says what is wrong, so each command can
refuse cleanly or salvage the rows that are intact. Nothing here touches SQLite: the functions
take the values a query returned, of whatever type they turned out to be.

Chunks carry a CRC-32 of their blob (store schema 3): SQLite keeps no checksum of its own, so
without it a flipped bit in the data would be read as a wrong number. Stores of schema 2 have
none, and their blobs are checked for their size only.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import TYPE_CHECKING, Any

from core.errors import CellseqError

if TYPE_CHECKING:
    import numpy as np


class StoreError(CellseqError):
    """The run store cannot be read, or written."""


class StoreBroken(StoreError):
    """A write after the store failed (the first failure says why)."""


class StoreDamaged(StoreError):
    """The run store holds something it cannot have written: a damaged file."""


def chunk_crc(data: bytes) -> int:
    """The checksum stored with a chunk's blob."""
    return zlib.crc32(data)


def decode_json(value: object, where: str, kind: type | None = None) -> Any:
    """A JSON column's value. ``kind``: the type the value must have (dict, list)."""
    if not isinstance(value, str):
        raise StoreDamaged(f"{where} holds a {type(value).__name__}, not JSON text")
    try:
        out = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise StoreDamaged(f"{where} does not parse as JSON ({_short(exc)})") from None
    if kind is not None and not isinstance(out, kind):
        raise StoreDamaged(f"{where} holds a JSON {type(out).__name__}, not a"
                           f" {kind.__name__}")
    return out


def decode_optional_json(value: object, where: str, kind: type | None = None) -> Any:
    """A nullable JSON column's value (None when NULL)."""
    return None if value is None else decode_json(value, where, kind)


def decode_chunk(data: object, n: object, names: tuple[str, ...], crc: object,
                 where: str) -> np.ndarray:
    """A chunk's blob as an array of ``len(names)`` rows of ``n`` float64 points each.

    ``crc`` is the stored checksum, or None for a chunk of a store without checksums."""
    if not isinstance(data, bytes):
        raise StoreDamaged(f"{where}: its data is a {type(data).__name__}, not a blob")
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise StoreDamaged(f"{where}: its point count {n!r} is not a positive whole number")
    want = 8 * n * len(names)
    if len(data) != want:
        raise StoreDamaged(f"{where}: its blob holds {len(data)} bytes where {n} points of"
                           f" {len(names)} columns need {want} (truncated, or a wrong point"
                           " count)")
    if crc is not None:
        if not isinstance(crc, int) or isinstance(crc, bool):
            raise StoreDamaged(f"{where}: its checksum {crc!r} is not a number")
        if chunk_crc(data) != crc:
            raise StoreDamaged(f"{where}: its blob does not match its checksum (bits changed"
                               " on the disk)")
    import numpy as np  # here, not at the top: reading a run's state needs no numpy

    return np.frombuffer(data, dtype="<f8").reshape(len(names), n)


def decode_number(value: object, where: str, *, optional: bool = False) -> float | None:
    """A REAL column (a time, an estimate): finite, or NULL where ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value):
        raise StoreDamaged(f"{where} holds {value!r}, not a finite number")
    return float(value)


def decode_int(value: object, where: str, *, optional: bool = False) -> int | None:
    """An INTEGER column (a step count, a cycle)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreDamaged(f"{where} holds {value!r}, not a whole number")
    return value


def decode_text(value: object, where: str, *, optional: bool = False) -> str | None:
    """A TEXT column (a cell id, a kind)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise StoreDamaged(f"{where} holds {value!r}, not text")
    return value


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."
