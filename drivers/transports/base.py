"""The transport contract every driver is written against, and the message-pair fake."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Self

from drivers.errors import TransportError


class Transport(ABC):
    """A line-oriented link to one instrument.

    ``write`` sends one message (the transport adds the terminator); ``read`` returns one reply
    without its terminator; ``query`` is a write then a read under the connection's lock, so two
    threads never interleave a command and another command's reply. Every failure of the link
    (timeout, closed, refused) raises :class:`TransportError`; what the reply *means* is the
    driver's business.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Release the link; safe to call twice."""

    @abstractmethod
    def write(self, message: str) -> None: ...

    @abstractmethod
    def read(self) -> str: ...

    def query(self, message: str) -> str:
        with self.lock:
            self.write(message)
            return self.read()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ExpectedExchange(Transport):
    """A fake link that asserts the exact, ordered exchange (PyMeasure's ``expected_protocol``).

    ``pairs`` is a list of ``(sent, reply)``: ``sent`` is what the driver must write next (None:
    nothing, the driver only reads), ``reply`` what the instrument answers (None: no answer; a
    read then times out with :class:`TransportError`). Use as a context manager: leaving the
    block asserts every pair was used.
    """

    def __init__(self, pairs: Iterable[tuple[str | None, str | None]]) -> None:
        super().__init__()
        self._pairs = list(pairs)
        self._next = 0
        self._pending: list[str] = []
        self.is_open = False

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def write(self, message: str) -> None:
        if self._pending:
            raise AssertionError(f"wrote {message!r} while the reply {self._pending[0]!r} to"
                                 " the previous command was never read")
        self._skip_read_only()
        if self._next >= len(self._pairs):
            raise AssertionError(f"unexpected write {message!r}: the exchange is over")
        sent, reply = self._pairs[self._next]
        if sent != message:
            raise AssertionError(f"exchange step {self._next}: expected {sent!r},"
                                 f" the driver wrote {message!r}")
        self._next += 1
        if reply is not None:
            self._pending.append(reply)

    def read(self) -> str:
        if self._pending:
            return self._pending.pop(0)
        if self._next < len(self._pairs) and self._pairs[self._next][0] is None:
            reply = self._pairs[self._next][1]
            self._next += 1
            if reply is not None:
                return reply
        raise TransportError("timed out waiting for a reply (the exchange has none here)")

    def _skip_read_only(self) -> None:
        if self._next < len(self._pairs) and self._pairs[self._next][0] is None:
            raise AssertionError(f"exchange step {self._next}: expected a read of"
                                 f" {self._pairs[self._next][1]!r}, the driver wrote instead")

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            left = self._pairs[self._next:]
            if left or self._pending:
                unread = f" and unread {self._pending!r}" if self._pending else ""
                raise AssertionError(f"the driver stopped early; still expected: {left}{unread}")
        self.close()
