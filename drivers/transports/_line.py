"""What every real line transport shares: reconnect, retry with backoff, and the traffic log.

A subclass only knows its library: how to connect, send bytes, read one terminated reply and which
of the library's exceptions mean "timed out" or "link broken". This class turns those into one
policy:

* A broken link (reset, closed, refused) or a timeout is *transient*: the connection is closed
  and opened again, and the whole exchange (``write``, or ``query`` = write + read) is repeated,
  up to ``attempts`` times with exponential backoff (tenacity). Reconnecting after a timeout also
  drops any late reply, so it can never be read as the answer to the next command.
* A standalone ``read`` is never repeated: its command was sent earlier and a repeat would not
  bring the reply back. The link is still reset for the next exchange.
* Every message sent and received is logged at DEBUG on ``cellseq.traffic`` with its repr.
* A reply must end with the read terminator: anything cut short is a broken link, never text
  handed to the driver (a truncated "3.612E+00" would read as a wrong number).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict, TypeVar

from drivers.errors import TransportError
from drivers.transports.base import Transport

if TYPE_CHECKING:   # tenacity when a link is used: not to check a station or plan a run
    import tenacity

traffic_log = logging.getLogger("cellseq.traffic")
log = logging.getLogger("cellseq.transport")

T = TypeVar("T")

#: What an exception message shows of a message at most (a data download runs to 100 kB+).
BRIEF_CHARS = 160


def brief(text: str, limit: int = BRIEF_CHARS) -> str:
    """``text`` cut to ``limit`` characters for an error message, marked where it was cut."""
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


class TransportTimeout(TransportError):
    """No complete reply arrived within the timeout."""


class LinkBroken(TransportError):
    """The link failed under us (closed, reset, refused); reconnecting may help."""


class LineOptions(TypedDict, total=False):
    """The options every line transport takes (see :class:`LineTransport`)."""

    timeout_s: float
    write_termination: str
    read_termination: str
    attempts: int
    backoff_s: float
    max_backoff_s: float
    encoding: str


class LineTransport(Transport):
    """A line-oriented link with reconnect and retry; see the module docstring for the policy."""

    def __init__(self, address: str, *, timeout_s: float = 2.0, write_termination: str = "\n",
                 read_termination: str = "\n", attempts: int = 3, backoff_s: float = 0.05,
                 max_backoff_s: float = 2.0, encoding: str = "ascii") -> None:
        super().__init__()
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 (every read has a timeout), not {timeout_s}")
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, not {attempts}")
        if not read_termination:
            raise ValueError("read_termination must not be empty: replies are lines")
        self.address = address
        self.timeout_s = timeout_s
        self.write_termination, self.read_termination = write_termination, read_termination
        self.attempts, self.backoff_s, self.max_backoff_s = attempts, backoff_s, max_backoff_s
        self.encoding = encoding
        self._wanted = False      # open() called and close() not yet: reconnect when broken
        self._connected = False

    # -- what a subclass provides -----------------------------------------------------------
    @abstractmethod
    def _connect(self) -> None:
        """Open the link; raise LinkBroken (worth retrying) or TransportError (not)."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Close the link, swallowing errors: it may already be dead."""

    @abstractmethod
    def _send(self, data: bytes) -> None:
        """Send all bytes; raise LinkBroken or TransportTimeout."""

    @abstractmethod
    def _receive(self) -> bytes:
        """Bytes up to and including the read terminator's last character, or what arrived
        before the timeout; raise LinkBroken or TransportTimeout for library failures."""

    # -- the Transport contract -------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._connected

    def open(self) -> None:
        with self.lock:
            self._wanted = True
            if not self._connected:
                self._retrying(self._reconnect)

    def close(self) -> None:
        with self.lock:
            self._wanted = False
            self._drop()

    def write(self, message: str) -> None:
        with self.lock:
            self._retrying(lambda: self._write_once(message))

    def read(self) -> str:
        with self.lock:
            self._ensure_connected()
            return self._read_once(None)

    def query(self, message: str) -> str:
        with self.lock:
            def exchange() -> str:
                self._write_once(message)
                return self._read_once(message)
            return self._retrying(exchange)

    # -- machinery ----------------------------------------------------------------------------
    def _retrying(self, fn: Callable[[], T]) -> T:
        import tenacity

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((LinkBroken, TransportTimeout)),
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            before_sleep=self._before_retry,
            reraise=True,
        )
        return retrying(fn)

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; reconnecting, attempt %d of %d in %.2g s", exc,
                    state.attempt_number + 1, self.attempts, wait)

    def _ensure_connected(self) -> None:
        if not self._wanted:
            raise TransportError(f"{self.address}: the link is not open; call open() first")
        if not self._connected:
            self._reconnect()

    def _reconnect(self) -> None:
        self._drop()
        self._connect()
        self._connected = True

    def _drop(self) -> None:
        if self._connected:
            self._connected = False
            self._disconnect()

    def _shown(self, message: str) -> str:
        """What the traffic log and error messages show of a message (a subclass redacts)."""
        return message

    def _write_once(self, message: str) -> None:
        self._ensure_connected()
        self._send_text(message)

    def _send_text(self, message: str) -> None:
        shown = self._shown(message)
        try:
            data = (message + self.write_termination).encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise TransportError(f"{self.address}: cannot send {brief(shown)!r} as"
                                 f" {self.encoding}: {exc.reason}") from None
        traffic_log.debug("%s >> %r", self.address, shown)
        try:
            self._send(data)
        except TransportError:
            self._drop()
            raise

    def _read_once(self, command: str | None) -> str:
        after = f" to {brief(self._shown(command))!r}" if command is not None else ""
        try:
            raw = self._receive()
        except TransportError:
            self._drop()
            raise
        text = raw.decode(self.encoding, errors="replace")
        if not text.endswith(self.read_termination):
            self._drop()   # a late rest of this reply must not answer the next command
            traffic_log.debug("%s << %r (incomplete)", self.address, text)
            if text:
                raise LinkBroken(f"{self.address}: the reply{after} was cut short:"
                                 f" {brief(text)!r}")
            raise TransportTimeout(f"{self.address}: no reply{after} within {self.timeout_s:g} s")
        text = text[:-len(self.read_termination)]
        if self.read_termination == "\n":
            text = text.removesuffix("\r")   # CR LF instruments work with the default
        traffic_log.debug("%s << %r", self.address, text)
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"
