"""Neware BTS cyclers through the BTS API: XML messages over TCP to the BTS PC (port 502).

Every message, both ways, is ``<?xml ...?><bts version="1.0">...</bts>`` followed by
``"\\n\\n#\\r\\n"`` (:class:`~drivers.transports.framed.FramedTransport`). The cycler runs its
tests standalone: the driver writes a step file, starts it, and afterwards only reads; a crash
of this computer does not stop a test, and :meth:`NewareBTS.close` stops only the tests this
driver started or adopted (a BTS is often shared).

* Login: ``connect`` (username, password, type ``bfgs``) on every TCP connection, as the
  transport's handshake, so a reconnect logs in before a retried command. The password is
  redacted from the traffic log and never appears in an exception.
* Channels: ``getdevinfo`` lists (devid, subdevid, chlid); channel index ``k`` is the k-th of
  them sorted, or of ``config.pipelines`` when given. Replies are matched by position, never by
  their ids: BTS 8 is known to name the wrong subdevid in some replies.
* One technique = one test: a step file with the technique as its one step (CC charge or
  discharge with a voltage cut-off, CV with a current cut-off, rest), the duration as the step's
  time limit, the record interval(s) and the channel's :class:`Protection` as the file's
  protection. Units in step files: voltage 0.1 mV, current mA, time ms.
* Each test's barcode is a fresh tag (``cellseq-<time>-<random>``) and the step file is named
  after it; with ``config.step_dir`` the file and a JSON sidecar holding the exact technique
  are kept there. :meth:`NewareBTSChannel.attachment` gives the barcode (and the channel's
  test id before it) for the run store to keep with the step.
* Re-attaching, in a new driver instance after a crash: with the step's attachment,
  :meth:`NewareBTSChannel.reattach` takes up the channel's test if ``inquire`` shows that very
  barcode (and the sidecar, where readable, names the same technique): still working or
  paused, or ended by the BTS itself meanwhile (finish, protect), whose points the next poll
  downloads before it ends as a live test would. A test stopped meanwhile is not taken up (a
  stop came from cellseq before the crash, say for a chamber suspension, or from a person;
  the sequencer's resume policy decides), nor is the channel's test once another has started.
  Without an attachment, :meth:`NewareBTSChannel.running` recognises only a working or paused
  test, by its barcode and sidecar, and only if the technique renders to the very step file
  found. A test started by hand or by another program is never taken up.
* Points: ``inquiredf`` gives the test id and the point count, ``download`` (at most
  :data:`MAX_DOWNLOAD` per request, ``startpos`` 1-based, ``testtime`` in ms) the new points;
  each reply must continue the sequence exactly (no gap, no repeat) and name our test id.
* State from ``inquire``'s ``workstatus``: working -> RUNNING; pause -> RUNNING with
  ``detail["paused"]``; finish -> DONE with the reason read from the last point ("voltage",
  "current", "duration", else "finished"); protect -> FAULT "protect"; stop that this driver
  did not send -> FAULT "stopped at the instrument".
* What the BTS cannot end by itself, the driver ends at the next poll, like an SMU: a short
  (:mod:`drivers.short_circuit`) and a steady current (``steady_rel``). A ``vs_ocv``
  voltage is relative to the voltage ``inquire`` reads just before the start.

Not yet checked on a real BTS (shapes follow aurora-neware and aurora-unicycler, both used on
BTS 8.0): whether ``Curr/Lower`` protection is signed (we send -max, harmless either way),
whether the ``backup`` element of ``start`` is required (sent only with ``backup_dir``), and the
``Record`` ``Volt``/``Curr`` criteria.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PureWindowsPath
from typing import Any

from pydantic import Field, model_validator

from drivers.errors import CapabilityError, CellseqError, DriverError
from drivers.interfaces import Channel, ChannelCapabilities, Cycler, SafetyLimits
from drivers.points import ChannelState, Points, Readout
from drivers.ranges import at_least, at_most
from drivers.short_circuit import ShortWatch
from drivers.spec import Bench, InstrumentSpec, Options, Setup
from drivers.steady import SteadyWatch
from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, Technique
from drivers.transports import LineTransport, Transport
from drivers.transports._line import brief
from drivers.transports.framed import Exchange, FramedTransport

log = logging.getLogger("cellseq.neware")

TERMINATOR = "\n\n#\r\n"
HEADER = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
FOOTER = "</bts>"
DEFAULT_PORT = 502
#: step-file units: 0.1 mV, mA, ms
VOLT_SCALE, CURR_SCALE, TIME_SCALE = 10_000.0, 1_000.0, 1_000.0
#: points per ``download`` request, the BTS's maximum
MAX_DOWNLOAD = 1000
#: step types (BTS 8 step files)
CC_CHARGE, CC_DISCHARGE, CV_CHARGE, REST, END, CV_DISCHARGE = 1, 2, 3, 4, 6, 19
TECHNIQUES = frozenset({"OpenCircuit", "ConstantCurrent", "ConstantVoltage"})
TAG_PREFIX = "cellseq-"
STEP_FILE_VERSION = "17"
CLIENT_VERSION = "BTS Client 8.0.0.478(2024.06.24)(R3)"
IDLE_STATES = ("finish", "stop", "protect")

_TAG = re.compile(r"^cellseq-(\d{14})-[0-9a-f]{6}$")
_PASSWORD = re.compile(r"<password>.*?</password>", re.DOTALL)
_RESPONSE_ALIASES = {"download": ("download_resp", "donwload_resp")}   # BTS 8 spells it so


def redact_password(message: str) -> str:
    """The message with its ``<password>`` element blanked, for logs and errors."""
    return _PASSWORD.sub("<password>***</password>", message)


def new_tag() -> str:
    """A fresh test tag: barcode and step-file name; the time is also the step file's date."""
    return f"{TAG_PREFIX}{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Protection:
    """Limits the BTS itself enforces on a channel (the step file's protection): a trip ends
    the test as "protect" even with no computer attached."""

    max_voltage_V: float | None = None
    min_voltage_V: float | None = None
    max_current_A: float | None = None   # magnitude, both directions

    def check(self, technique: Technique, name: str) -> None:
        """Refuse what would trip at once: limits the BTS would stop the step beyond."""
        hi, lo, i_max = self.max_voltage_V, self.min_voltage_V, self.max_current_A
        for attr in ("until_voltage_V", "voltage_V"):
            v = getattr(technique, attr, None)
            if v is not None and ((hi is not None and not at_most(v, hi))
                                  or (lo is not None and not at_least(v, lo))):
                raise CapabilityError(f"{name}: {attr} {v:g} V is beyond the channel's"
                                      f" protection {_range(lo, hi)} V")
        i = getattr(technique, "current_A", None)
        if i is not None and i_max is not None and not at_most(abs(i), i_max):
            raise CapabilityError(f"{name}: current {i:g} A is beyond the channel's protection"
                                  f" of +-{i_max:g} A")


@dataclass(frozen=True, kw_only=True)
class NewareBTSConfig:
    """A BTS and how this station uses it. ``max_current_A`` and the voltage range are the
    units' ratings (the API does not report them).

    ``step_dir``: where this driver writes step files and keeps what re-attaching needs.
    ``bts_step_dir``: the same folder as the BTS PC names it (``start`` sends a path there);
    None sends the step file's content instead, which only the simulator accepts.
    """

    max_current_A: float
    min_voltage_V: float = 0.0
    max_voltage_V: float = 5.0
    username: str = "admin"
    password: str = field(default="neware", repr=False)
    step_dir: Path | None = None
    bts_step_dir: str | None = None
    backup_dir: str | None = None            # data backup folder on the BTS PC, if wanted
    pipelines: tuple[tuple[int, int, int], ...] | None = None   # (devid, subdevid, chlid)
    protection: Protection | None = None     # default for every channel; None: the ratings
    voltage_tolerance_V: float = 1e-3        # a cut-off counts as reached this close
    current_tolerance_A: float = 1e-6
    start_timeout_s: float = 60.0            # wall time for a started test to appear

    def __post_init__(self) -> None:
        if self.max_current_A <= 0:
            raise CapabilityError(f"max_current_A must be > 0, not {self.max_current_A:g}")
        if not self.min_voltage_V < self.max_voltage_V:
            raise CapabilityError(f"min_voltage_V {self.min_voltage_V:g} must be below"
                                  f" max_voltage_V {self.max_voltage_V:g}")
        if self.bts_step_dir is not None and self.step_dir is None:
            raise ValueError("bts_step_dir needs step_dir: the folder the driver writes the"
                             " step files into, as this computer sees it")


def rated_capabilities(max_current_A: float, min_voltage_V: float = 0.0,
                       max_voltage_V: float = 5.0) -> ChannelCapabilities:
    """A BTS channel as its unit is rated (the station says: the API does not report it)."""
    return ChannelCapabilities(max_current_A=max_current_A, min_voltage_V=min_voltage_V,
                               max_voltage_V=max_voltage_V, techniques=TECHNIQUES)


@dataclass(frozen=True)
class _Pipeline:
    ip: str
    devtype: str
    devid: int
    subdevid: int
    chlid: int

    def attrs(self, with_ip: bool = True) -> dict[str, str]:
        ids = {"devtype": self.devtype, "devid": str(self.devid),
               "subdevid": str(self.subdevid), "chlid": str(self.chlid)}
        return {"ip": self.ip, **ids} if with_ip else ids

    def __str__(self) -> str:
        return f"{self.devid}-{self.subdevid}-{self.chlid}"


@dataclass(frozen=True)
class _Status:
    workstatus: str
    barcode: str | None
    voltage_V: float | None
    log_code: str | None


class NewareBTS(Cycler):
    """The BTS API server: explicit open/close; channels as ``getdevinfo`` lists them."""

    model = "Neware BTS"
    blocking_io = True

    def __init__(self, transport: Transport, config: NewareBTSConfig, *,
                 tags: Callable[[], str] = new_tag) -> None:
        if isinstance(transport, LineTransport) and not isinstance(transport, FramedTransport):
            raise TypeError("a Neware BTS needs a FramedTransport (NewareBTS.from_address): a"
                            " line transport cannot frame its messages and would log the"
                            " password")
        self._transport, self.config, self._tags = transport, config, tags
        if isinstance(transport, FramedTransport):
            transport.redact, transport.handshake = redact_password, self._login
        self._lock = threading.RLock()
        self._channels: list[NewareBTSChannel] = []
        self._open = False

    @classmethod
    def from_address(cls, host: str, config: NewareBTSConfig, *, port: int = DEFAULT_PORT,
                     **transport_options: Any) -> NewareBTS:
        """The BTS API at ``host:port``; nothing is connected yet."""
        options = {"timeout_s": 10.0} | transport_options
        link = FramedTransport(f"tcp://{host}:{port}", terminator=TERMINATOR, **options)
        return cls(link, config)

    # -- the instrument -----------------------------------------------------------------------
    def open(self) -> None:
        """Connect and log in, then learn the channels."""
        with self._lock:
            if self._open:
                return
            try:
                self._transport.open()
                if not isinstance(self._transport, FramedTransport):
                    self._login(self._transport.query)   # FramedTransport logs in on connect
                self._channels = [NewareBTSChannel(self, k, p)
                                  for k, p in enumerate(self._pipelines())]
            except BaseException:
                self._transport.close()
                raise
            self._open = True

    def close(self) -> None:
        """Stop the tests this driver started or adopted (never other users' tests on the same
        BTS), then release the link; one failure does not keep the rest running."""
        with self._lock:
            problems = []
            try:
                for channel in self._channels:
                    if channel.owns_test:
                        try:
                            channel.stop()
                        except CellseqError as exc:
                            problems.append(str(exc))
            finally:
                self._open = False
                self._transport.close()
            if problems:
                raise DriverError("; ".join(problems))

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def channel(self, index: int) -> NewareBTSChannel:
        if not self._open:
            raise DriverError(f"{self.model}: not open; call open() first")
        if not 0 <= index < len(self._channels):
            raise CapabilityError(f"{self.model} has channels 0..{len(self._channels) - 1},"
                                  f" not {index}")
        return self._channels[index]

    def channel_capabilities(self) -> ChannelCapabilities:
        """Every channel's: the units' ratings from the config (the API does not say)."""
        cfg = self.config
        return rated_capabilities(cfg.max_current_A, cfg.min_voltage_V, cfg.max_voltage_V)

    # -- messages -----------------------------------------------------------------------------
    def command(self, name: str, *elements: ET.Element) -> ET.Element:
        """Send ``<cmd>name</cmd>`` and ``elements``; the parsed reply, checked to be the
        answer to ``name``."""
        reply = self._transport.query(message(name, *elements))
        return parse_reply(reply, name)

    def _login(self, exchange: Exchange) -> None:
        cfg = self.config
        body = [_element("username", cfg.username), _element("password", cfg.password),
                _element("type", "bfgs")]
        root = parse_reply(exchange(message("connect", *body)), "connect")
        result = (root.findtext("result") or "").strip()
        if result != "ok":
            raise DriverError(f"the BTS refused the login of user {cfg.username!r} (result"
                              f" {result!r}): check the username and password and that the"
                              " API is enabled in BTS")

    def _pipelines(self) -> list[_Pipeline]:
        root = self.command("getdevinfo")
        listed = []
        for el in root.iterfind("middle/channel"):
            listed.append(_Pipeline(el.get("ip", ""), el.get("devtype", ""),
                                    _int(el, "devid", "getdevinfo"),
                                    _int(el, "subdevid", "getdevinfo"),
                                    _int(el, "Channelid", "getdevinfo")))
        if not listed:
            raise DriverError("getdevinfo lists no channels: check that the units are connected"
                              " and working in BTS Client")
        by_id = {(p.devid, p.subdevid, p.chlid): p for p in listed}
        if self.config.pipelines is None:
            return [by_id[k] for k in sorted(by_id)]
        missing = [f"{d}-{s}-{c}" for d, s, c in self.config.pipelines if (d, s, c) not in by_id]
        if missing:
            raise CapabilityError(f"pipelines {', '.join(missing)} are not on this BTS"
                                  f" (getdevinfo lists {', '.join(map(str, listed))})")
        return [by_id[k] for k in self.config.pipelines]


@dataclass
class _Run:
    """A test this driver started or adopted, and how far its points have been read."""

    technique: Technique
    tag: str
    previous_testid: int | None   # the channel's test before ours: ours is the next one
    testid: int | None = None     # known once the BTS shows the test
    next_seq: int = 1
    last: tuple[float, float, float] | None = None   # t, V, I of the last point read
    started_monotonic: float = field(default_factory=time.monotonic)
    steady: SteadyWatch | None = field(init=False)
    short: ShortWatch | None = field(init=False)
    ended: bool = False           # the BTS had ended it when this driver took it up

    def __post_init__(self) -> None:
        self.steady = SteadyWatch.of(self.technique)
        self.short = ShortWatch.of(self.technique)


class NewareBTSChannel(Channel):
    """One BTS channel: the cycler runs each technique itself (see the module docstring)."""

    def __init__(self, bts: NewareBTS, index: int, pipeline: _Pipeline) -> None:
        self._bts, self.index, self.pipeline = bts, index, pipeline
        self.name = f"{bts.model} channel {index} ({pipeline})"
        self._caps = bts.channel_capabilities()
        cfg = bts.config
        self.protection = cfg.protection or Protection(cfg.max_voltage_V, cfg.min_voltage_V,
                                                       cfg.max_current_A)
        self._state = ChannelState.IDLE
        self._end_reason: str | None = None
        self._run: _Run | None = None

    @property
    def capabilities(self) -> ChannelCapabilities:
        return self._caps

    @property
    def owns_test(self) -> bool:
        """This driver started or adopted the test on the channel, and it may still run."""
        return self._state is ChannelState.RUNNING and not (self._run and self._run.ended)

    def set_protection(self, protection: Protection) -> None:
        """The cell's safety limits, for the BTS to enforce from the next start on."""
        self.protection = protection

    def set_safety_limits(self, limits: SafetyLimits) -> bool:
        self.set_protection(Protection(limits.max_voltage_V, limits.min_voltage_V,
                                       limits.max_abs_current_A))
        return True

    # -- start / stop -------------------------------------------------------------------------
    def start(self, technique: Technique) -> None:
        with self._bts._lock:
            if self._state is ChannelState.RUNNING:
                raise DriverError(f"{self.name}: a technique is already running; stop it first")
            self._caps.check(technique)
            self._check_supported(technique)
            status = self._inquire()
            if status.workstatus not in IDLE_STATES:
                raise DriverError(f"{self.name} is {status.workstatus} (test"
                                  f" {status.barcode!r}); stop it first")
            v_ref = status.voltage_V if status.voltage_V is not None else 0.0
            absolute = technique
            if isinstance(technique, ConstantVoltage) and technique.vs_ocv:
                absolute = replace(technique, voltage_V=technique.voltage_V + v_ref,
                                   vs_ocv=False)
                self._caps.check(absolute)
            self.protection.check(absolute, self.name)
            previous, _ = self._inquiredf()
            tag = self._bts._tags()
            limit_A = self.protection.max_current_A or self._caps.max_current_A
            steps = step_file(technique, tag, self.protection, v_ref, limit_A)
            where = self._place(tag, steps, technique, v_ref, limit_A)
            element = ET.Element("start", self.pipeline.attrs() | {"barcode": tag})
            element.text = where
            root = self._bts.command("start", _listed(element, self._bts.config.backup_dir))
            if _result(root, "start", self.name) != "ok":
                # a start retried after a dropped link is refused as the channel already runs
                again = self._inquire()
                if again.workstatus != "working" or again.barcode != tag:
                    raise DriverError(f"{self.name}: the BTS refused to start test {tag}"
                                      f" ({where if len(where) < 200 else 'inline step file'}):"
                                      " check the channel and that the BTS PC can read the"
                                      " step file")
            self._run = _Run(technique, tag, previous)
            self._state, self._end_reason = ChannelState.RUNNING, None

    def stop(self) -> None:
        """``stop`` the channel, always (while open); a channel that was not running counts
        as stopped. :class:`DriverError` only if it still works after the command."""
        with self._bts._lock:
            if self._bts.is_open:
                self._send_stop()
            if self._state is ChannelState.RUNNING:
                self._end_reason = "stopped"
            self._run, self._state = None, ChannelState.IDLE

    # -- reading --------------------------------------------------------------------------------
    def poll(self) -> Readout:
        with self._bts._lock:
            run = self._run
            if run is None or self._state is not ChannelState.RUNNING:
                return Readout(Points.empty(), self._state, self._end_reason)
            status = self._inquire()          # first the state, then the count: a test that
            testid, count = self._inquiredf()  # ended meanwhile has all its points counted
            if run.testid is None:
                if testid == run.previous_testid or status.barcode not in (run.tag, None):
                    if time.monotonic() - run.started_monotonic > self._bts.config.start_timeout_s:
                        return self._end(Points.empty(), ChannelState.FAULT,
                                         "test did not start")
                    return Readout(Points.empty(), ChannelState.RUNNING)
                run.testid = testid
            if testid != run.testid:
                return self._end(Points.empty(), ChannelState.FAULT,
                                 f"replaced by test {testid}")
            points = self._download(run, count)
            reason = self._software_end(run, points)
            if reason is not None:
                points = points.select(points.time_s <= run.last[0])  # type: ignore[index]
                self._send_stop()
                return self._end(points, ChannelState.DONE, reason)
            return self._readout(run, status, points)

    def running(self) -> Technique | None:
        """The technique running on the channel, if this driver started it or can recognise
        it (a cellseq barcode and its step files in ``step_dir``). A recognised test is
        adopted: the next poll returns its points from the test's start on (call
        :meth:`skip_through` to leave out what is already stored)."""
        with self._bts._lock:
            if self._run is not None and self._state is ChannelState.RUNNING:
                return self._run.technique
            status = self._inquire()
            if status.workstatus not in ("working", "pause") or status.barcode is None:
                return None
            technique = self._recognise(status.barcode)
            if technique is None:
                return None
            testid, _ = self._inquiredf()
            self._run = _Run(technique, status.barcode, None, testid)
            self._state, self._end_reason = ChannelState.RUNNING, None
            log.info("%s: re-attached to test %s (%s)", self.name, status.barcode,
                     type(technique).__name__)
            return technique

    def attachment(self) -> dict[str, str] | None:
        """The test just started: its barcode, the channel's test id before it and, once a
        poll has seen it, its own; :meth:`reattach` finds the test with them."""
        with self._bts._lock:
            run = self._run
            if run is None or self._state is not ChannelState.RUNNING:
                return None
            found = {"barcode": run.tag}
            if run.previous_testid is not None:
                found["previous_testid"] = str(run.previous_testid)
            if run.testid is not None:
                found["testid"] = str(run.testid)
            return found

    def reattach(self, technique: Technique, attachment: dict[str, str] | None) -> bool:
        """Take up the test ``attachment`` names (:meth:`attachment`, kept by an earlier run)
        if the channel still holds it, working or paused, or ended by the BTS meanwhile
        (finish, protect): the next poll then downloads its points from the test's start and
        ends as a live test would. False if the channel holds another test, or this one
        stopped (by cellseq before the crash, or by hand: the sequencer's resume policy
        decides), or its sidecar names another technique. Without an attachment:
        :meth:`running` equals ``technique``."""
        tag = None if attachment is None else attachment.get("barcode")
        if attachment is None or tag is None:
            return super().reattach(technique, attachment)
        with self._bts._lock:
            if self._run is not None and self._state is ChannelState.RUNNING:
                return self._run.tag == tag and self._run.technique == technique
            status = self._inquire()
            if status.barcode != tag:
                log.info("%s holds test %r, not %s: not re-attached", self.name,
                         status.barcode, tag)
                return False
            if status.workstatus == "stop":
                log.info("%s: test %s was stopped while no driver was attached: not"
                         " re-attached", self.name, tag)
                return False
            testid, _ = self._inquiredf()
            if attachment.get("testid", str(testid)) != str(testid):
                log.info("%s: test %s has test id %d, not %s: not re-attached", self.name, tag,
                         testid, attachment["testid"])
                return False
            recognised = self._recognise(tag)
            if recognised is not None and recognised != technique:
                log.warning("%s: test %s ran %s, not the step's technique: not re-attached",
                            self.name, tag, type(recognised).__name__)
                return False
            previous = _optional_int(attachment.get("previous_testid"))
            ended = status.workstatus in IDLE_STATES
            self._run = _Run(technique, tag, previous, None if testid == previous else testid,
                             ended=ended)
            self._state, self._end_reason = ChannelState.RUNNING, None
            log.info("%s: re-attached to test %s (%s), %s", self.name, tag,
                     type(technique).__name__,
                     f"which ended meanwhile ({status.workstatus})" if ended else "running")
            return True

    def skip_through(self, time_s: float) -> None:
        """Leave out the points up to technique time ``time_s`` (already stored by an earlier
        driver): a binary search with single-point downloads finds where to go on."""
        with self._bts._lock:
            run = self._run
            if run is None or run.testid is None:
                raise DriverError(f"{self.name}: no test to skip through; start or adopt one")
            _, count = self._inquiredf()
            lo, hi = run.next_seq, count + 1      # first seq after time_s is in [lo, hi]
            while lo < hi:
                mid = (lo + hi) // 2
                if self._fetch(run, mid, 1)[0][0] <= time_s:
                    lo = mid + 1
                else:
                    hi = mid
            if lo > run.next_seq:
                run.next_seq = lo
                run.last = self._fetch(run, lo - 1, 1)[0]

    def read_voltage(self) -> float:
        status = self._inquire()
        if status.voltage_V is None:
            raise DriverError(f"{self.name}: inquire gave no voltage")
        return status.voltage_V

    # -- helpers ------------------------------------------------------------------------------
    def _send_stop(self) -> None:
        root = self._bts.command("stop", _listed(_stop_element(self.pipeline)))
        if _result(root, "stop", self.name) != "ok":
            status = self._inquire()   # refused: fine if there was nothing to stop
            if status.workstatus not in IDLE_STATES:
                raise DriverError(f"{self.name}: stop was refused and the channel is still"
                                  f" {status.workstatus}")

    def _check_supported(self, technique: Technique) -> None:
        if isinstance(technique, ConstantCurrent) and technique.current_A == 0:
            raise CapabilityError(f"{self.name}: a 0 A constant current is a rest; use"
                                  " OpenCircuit")
        if isinstance(technique, ConstantVoltage) and technique.steady_rel is not None \
                and not technique.steady_window_s:
            raise CapabilityError(f"{self.name}: steady_rel needs steady_window_s")

    def _inquire(self) -> _Status:
        element = ET.Element("inquire", self.pipeline.attrs() | {"aux": "0", "barcode": "1"})
        element.text = "true"
        el = _single(self._bts.command("inquire", _listed(element)), "inquire", self.name)
        workstatus = el.get("workstatus")
        if workstatus not in ("working", "pause", *IDLE_STATES):
            raise DriverError(f"{self.name}: inquire gives an unknown workstatus"
                              f" {workstatus!r}")
        barcode = el.get("barcode") or None
        voltage = el.get("voltage")
        return _Status(workstatus, barcode,
                       None if voltage in (None, "--") else _float(el, "voltage", "inquire"),
                       el.get("log_code"))

    def _inquiredf(self) -> tuple[int, int]:
        element = ET.Element("chl", self.pipeline.attrs(with_ip=False) | {"testid": "0"})
        el = _single(self._bts.command("inquiredf", _listed(element)), "inquiredf", self.name)
        testid, count = _int(el, "testid", "inquiredf"), _int(el, "count", "inquiredf")
        if count < 0:
            raise DriverError(f"{self.name}: inquiredf counts {count} points")
        return testid, count

    def _fetch(self, run: _Run, start: int, count: int) -> list[tuple[float, float, float]]:
        """Points ``start`` .. ``start + count - 1`` of our test, exactly those."""
        attrs = self.pipeline.attrs(with_ip=False) | {
            "auxid": "0", "testid": "0", "startpos": str(start), "count": str(count)}
        root = self._bts.command("download", ET.Element("download", attrs))
        head = root.find("download")
        if head is not None and head.get("testid") not in (None, str(run.testid)):
            raise DriverError(f"{self.name}: download answered test {head.get('testid')},"
                              f" not ours ({run.testid})")
        rows = root.findall("list/data")
        if not rows or len(rows) > count:
            raise DriverError(f"{self.name}: download of {count} points from {start} answered"
                              f" {len(rows)}")
        out = []
        for k, row in enumerate(rows):
            if _int(row, "seqid", "download") != start + k:
                raise DriverError(f"{self.name}: download from {start} answered seqid"
                                  f" {row.get('seqid')} at position {k}: a gap or a repeat")
            out.append((_float(row, "testtime", "download") / TIME_SCALE,
                        _float(row, "volt", "download"), _float(row, "curr", "download")))
        return out

    def _download(self, run: _Run, count: int) -> Points:
        import numpy as np

        rows: list[tuple[float, float, float]] = []
        while run.next_seq <= count:
            got = self._fetch(run, run.next_seq, min(MAX_DOWNLOAD, count - run.next_seq + 1))
            rows += got
            run.next_seq += len(got)
        if not rows:
            return Points.empty()
        t, v, i = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
        if (run.last is not None and t[0] < run.last[0]) or np.any(np.diff(t) < 0):
            raise DriverError(f"{self.name}: the test's time went backwards in a download")
        run.last = rows[-1]
        return Points(time_s=t, voltage_V=v, current_A=i)

    def _software_end(self, run: _Run, points: Points) -> str | None:
        """Criteria the BTS cannot apply; sets ``run.last`` to the point that meets one."""
        for t, v, i in zip(points.time_s, points.voltage_V, points.current_A, strict=True):
            reason = None
            if run.short is not None and run.short.shorted(t, v):
                reason = "short"
            elif run.steady is not None and run.steady.reached(t, i):
                reason = "steady"
            if reason is not None:
                run.last = (float(t), float(v), float(i))
                return reason
        return None

    def _readout(self, run: _Run, status: _Status, points: Points) -> Readout:
        ws = status.workstatus
        if ws == "working":
            return Readout(points, ChannelState.RUNNING)
        if ws == "pause":
            return Readout(points, ChannelState.RUNNING, detail={"paused": 1.0})
        if ws == "finish":
            return self._end(points, ChannelState.DONE, self._finish_reason(run))
        if ws == "protect":
            detail = {"log_code": float(status.log_code)} \
                if status.log_code and status.log_code.isdigit() else {}
            readout = self._end(points, ChannelState.FAULT, "protect")
            readout.detail.update(detail)
            return readout
        return self._end(points, ChannelState.FAULT, "stopped at the instrument")

    def _finish_reason(self, run: _Run) -> str:
        """Which limit ended a finished step, read from its last point."""
        if run.last is None:
            return "finished"
        t, v, i = run.last
        tech, cfg = run.technique, self._bts.config
        if isinstance(tech, ConstantCurrent) and tech.until_voltage_V is not None:
            limit, tol = tech.until_voltage_V, cfg.voltage_tolerance_V
            if (tech.current_A > 0 and v >= limit - tol) or \
                    (tech.current_A < 0 and v <= limit + tol):
                return "voltage"
        if isinstance(tech, ConstantVoltage) and tech.until_abs_current_A is not None \
                and abs(i) <= tech.until_abs_current_A + cfg.current_tolerance_A:
            return "current"
        if t >= tech.duration_s - 1.0 / TIME_SCALE:
            return "duration"
        return "finished"

    def _end(self, points: Points, state: ChannelState, reason: str) -> Readout:
        self._run, self._state, self._end_reason = None, state, reason
        if state is ChannelState.FAULT:
            log.warning("%s: %s", self.name, reason)
        return Readout(points, state, reason)

    def _place(self, tag: str, steps: str, technique: Technique, v_ref: float,
               limit_A: float) -> str:
        """Write the step file (and the sidecar re-attaching reads); what ``start`` names."""
        cfg = self._bts.config
        if cfg.step_dir is not None:
            try:
                cfg.step_dir.mkdir(parents=True, exist_ok=True)
                (cfg.step_dir / f"{tag}.xml").write_text(steps, encoding="utf-8")
                sidecar = {"technique": type(technique).__name__, "fields": asdict(technique),
                           "v_ref": v_ref, "current_limit_A": limit_A,
                           "protection": asdict(self.protection)}
                (cfg.step_dir / f"{tag}.json").write_text(json.dumps(sidecar), encoding="utf-8")
            except OSError as exc:
                raise DriverError(f"{self.name}: cannot write the step file for {tag} into"
                                  f" step_dir: {exc}") from None
        if cfg.bts_step_dir is None:
            return steps
        return bts_path(cfg.bts_step_dir, f"{tag}.xml")

    def _recognise(self, tag: str) -> Technique | None:
        """The technique of test ``tag`` from its sidecar, if it renders to its step file."""
        step_dir = self._bts.config.step_dir
        if not _TAG.match(tag) or step_dir is None:
            return None
        try:
            steps = (step_dir / f"{tag}.xml").read_text(encoding="utf-8")
            sidecar = json.loads((step_dir / f"{tag}.json").read_text(encoding="utf-8"))
            kind = {c.__name__: c for c in (OpenCircuit, ConstantCurrent, ConstantVoltage)}
            technique = kind[sidecar["technique"]](**sidecar["fields"])
            protection = Protection(**sidecar["protection"])
            again = step_file(technique, tag, protection, float(sidecar["v_ref"]),
                              float(sidecar["current_limit_A"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: the step files of cellseq test %s cannot be read (%s)", self.name,
                        tag, exc)
            return None
        if again != steps:
            log.warning("%s: the step file of cellseq test %s does not match its technique",
                        self.name, tag)
            return None
        return technique


# -- the step file ----------------------------------------------------------------------------
def bts_path(folder: str, name: str) -> str:
    """``name`` in ``folder`` as the BTS PC writes paths: Windows style (``C:\\steps``,
    ``\\\\server\\share``), else POSIX (a simulator)."""
    windows = "\\" in folder or re.match(r"^[A-Za-z]:", folder) is not None
    return str(PureWindowsPath(folder) / name) if windows else f"{folder.rstrip('/')}/{name}"


def step_file(technique: Technique, tag: str, protection: Protection, v_ref_V: float,
              current_limit_A: float) -> str:
    """The BTS 8 step file running ``technique`` as one step, then the end step.

    ``v_ref_V`` is the channel's voltage before the start: a CV above it charges (type 3),
    below it discharges (type 19), and a ``vs_ocv`` voltage is relative to it. A CV step also
    needs a current limit (``current_limit_A``: while the cell would draw more, the BTS holds
    that current, so CV is CC-CV).
    """
    match = _TAG.match(tag)
    date = match.group(1) if match else "19700101000000"
    root = ET.Element("root")
    config = ET.SubElement(root, "config", {
        "type": "Step File", "version": STEP_FILE_VERSION, "client_version": CLIENT_VERSION,
        "date": date, "Guid": str(uuid.uuid5(uuid.NAMESPACE_URL, tag))})
    head = ET.SubElement(config, "Head_Info")
    for name, value in (("Operate", "66"), ("Scale", "1"), ("Start_Step", "1"),
                        ("Creator", "cellseq"), ("Remark", tag), ("RateType", "103"),
                        ("MultCap", "3600000")):
        ET.SubElement(head, name, Value=value)
    head.find("Start_Step").set("Hide_Ctrl_Step", "0")  # type: ignore[union-attr]
    whole = ET.SubElement(config, "Whole_Prt")
    _protect(ET.SubElement(whole, "Protect"), protection)
    record = ET.SubElement(ET.SubElement(whole, "Record"), "Main")
    _value(record, "Time", technique.record_dt_s, TIME_SCALE)
    _value(record, "Volt", getattr(technique, "record_dV_V", None), VOLT_SCALE)
    _value(record, "Curr", getattr(technique, "record_dI_A", None), CURR_SCALE)
    info = ET.SubElement(config, "Step_Info", Num="2")
    step_type, limits = _step(technique, v_ref_V, current_limit_A)
    step = ET.SubElement(info, "Step1", Step_ID="1", Step_Type=str(step_type))
    main = ET.SubElement(ET.SubElement(step, "Limit"), "Main")
    for name, value, scale in limits:
        _value(main, name, value, scale)
    ET.SubElement(info, "Step2", Step_ID="2", Step_Type=str(END))
    ET.SubElement(ET.SubElement(config, "SMBUS"), "SMBUS_Info", Num="0", AdjacentInterval="0")
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


_Limits = list[tuple[str, float | None, float]]   # (element, SI value, scale)


def _step(technique: Technique, v_ref: float, limit_A: float) -> tuple[int, _Limits]:
    if isinstance(technique, ConstantCurrent):
        kind = CC_CHARGE if technique.current_A > 0 else CC_DISCHARGE
        return kind, [("Curr", abs(technique.current_A), CURR_SCALE),
                      ("Time", technique.duration_s, TIME_SCALE),
                      ("Stop_Volt", technique.until_voltage_V, VOLT_SCALE)]
    if isinstance(technique, ConstantVoltage):
        voltage = technique.voltage_V + (v_ref if technique.vs_ocv else 0.0)
        kind = CV_CHARGE if voltage >= v_ref else CV_DISCHARGE
        return kind, [("Volt", voltage, VOLT_SCALE), ("Curr", limit_A, CURR_SCALE),
                      ("Time", technique.duration_s, TIME_SCALE),
                      ("Stop_Curr", technique.until_abs_current_A, CURR_SCALE)]
    if isinstance(technique, OpenCircuit):
        return REST, [("Time", technique.duration_s, TIME_SCALE)]
    raise CapabilityError(f"a Neware BTS cannot run {type(technique).__name__}")


def _protect(protect: ET.Element, limits: Protection) -> None:
    main = ET.SubElement(protect, "Main")
    volt = ET.SubElement(main, "Volt")
    _value(volt, "Upper", limits.max_voltage_V, VOLT_SCALE)
    _value(volt, "Lower", limits.min_voltage_V, VOLT_SCALE)
    if limits.max_current_A is not None:
        curr = ET.SubElement(main, "Curr")
        _value(curr, "Upper", limits.max_current_A, CURR_SCALE)
        _value(curr, "Lower", -limits.max_current_A, CURR_SCALE)


def _value(parent: ET.Element, name: str, value: float | None, scale: float) -> None:
    if value is not None:
        ET.SubElement(parent, name, Value=_fixed(value * scale))


def _fixed(x: float) -> str:
    """Fixed point, no exponent, trailing zeros dropped: 42000, 0.5, 0.001."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


# -- messages ---------------------------------------------------------------------------------
def message(command: str, *elements: ET.Element) -> str:
    """One BTS API message (without the terminator, which the transport adds)."""
    body = "".join(ET.tostring(el, encoding="unicode") for el in elements)
    return f"{HEADER}<cmd>{command}</cmd>{body}{FOOTER}"


def parse_reply(text: str, command: str) -> ET.Element:
    """The reply's ``<bts>`` element; :class:`DriverError` for anything else. A DOCTYPE is
    refused before parsing, so no entity is ever declared, let alone expanded."""
    shown = brief(redact_password(text))
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise DriverError(f"{command}: the reply declares a DOCTYPE; refused: {shown!r}")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise DriverError(f"{command}: unreadable reply ({exc}): {shown!r}") from None
    if root.tag != "bts":
        raise DriverError(f"{command}: the reply is <{root.tag}>, not <bts>: {shown!r}")
    answer = (root.findtext("cmd") or "").strip()
    if answer not in _RESPONSE_ALIASES.get(command, (f"{command}_resp",)):
        raise DriverError(f"{command}: the reply answers {answer!r}, not {command}_resp:"
                          f" {shown!r}")
    return root


def _element(tag: str, text: str) -> ET.Element:
    el = ET.Element(tag)
    el.text = text
    return el


def _listed(element: ET.Element, backup_dir: str | None = None) -> ET.Element:
    wrapper = ET.Element("list", count="1")
    wrapper.append(element)
    if backup_dir is not None:
        ET.SubElement(wrapper, "backup", {
            "backupdir": backup_dir, "remotedir": "", "filenametype": "0", "customfilename": "",
            "addtimewhenrepeat": "0", "createdirbydate": "0", "filetype": "0",
            "backupontime": "1", "backupontimeinterval": "720", "backupfree": "1"})
    return wrapper


def _stop_element(pipeline: _Pipeline) -> ET.Element:
    element = ET.Element("stop", pipeline.attrs())
    element.text = "true"
    return element


def _single(root: ET.Element, command: str, name: str) -> ET.Element:
    found = root.find("list")
    items = list(found) if found is not None else []
    if len(items) != 1:
        raise DriverError(f"{name}: {command} answered {len(items)} channels, not 1")
    return items[0]


def _result(root: ET.Element, command: str, name: str) -> str:
    return ((_single(root, command, name).text) or "").strip()


def _float(el: ET.Element, attr: str, command: str) -> float:
    import numpy as np

    text = el.get(attr)
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DriverError(f"{command}: {attr}={text!r} is not a number") from None
    if not np.isfinite(value):
        raise DriverError(f"{command}: {attr}={text!r} is not a finite number")
    return value


def _int(el: ET.Element, attr: str, command: str) -> int:
    text = el.get(attr)
    try:
        return int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DriverError(f"{command}: {attr}={text!r} is not an integer") from None


def _optional_int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _range(lo: float | None, hi: float | None) -> str:
    return f"{'-inf' if lo is None else f'{lo:g}'}..{'inf' if hi is None else f'{hi:g}'}"


# -- the spec ---------------------------------------------------------------------------------

class NewareBTSOptions(Options):
    """The units' ratings (``max_current_A`` is required: the API does not report it), and
    where the driver keeps step files (see :class:`NewareBTSConfig`)."""

    timeout_s: float | None = Field(default=None, gt=0, le=600)
    max_current_A: float = Field(gt=0, le=1000)
    min_voltage_V: float = Field(default=0.0, ge=-100, le=100)
    max_voltage_V: float = Field(default=5.0, ge=-100, le=100)
    step_dir: str | None = Field(default=None, min_length=1)
    bts_step_dir: str | None = Field(default=None, min_length=1)
    backup_dir: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> NewareBTSOptions:
        if self.min_voltage_V >= self.max_voltage_V:
            raise ValueError(f"min_voltage_V {self.min_voltage_V:g} must be below max_voltage_V"
                             f" {self.max_voltage_V:g}")
        if self.bts_step_dir is not None and self.step_dir is None:
            raise ValueError("bts_step_dir needs step_dir: the folder the driver writes the"
                             " step files into, as this computer sees it")
        return self


def _capabilities(options: NewareBTSOptions) -> ChannelCapabilities:
    return rated_capabilities(options.max_current_A, options.min_voltage_V,
                              options.max_voltage_V)


def _build(setup: Setup, bench: Bench) -> NewareBTS:
    if setup.password is None:
        raise ValueError("no password: give 'password', or 'password_env' naming an"
                         " environment variable that is set")
    assert setup.address is not None
    o = setup.options
    host, _, port = setup.address.removeprefix("tcp://").rpartition(":")
    if not host or not port.isdigit():
        host, port = setup.address.removeprefix("tcp://"), str(DEFAULT_PORT)
    config = NewareBTSConfig(
        username=setup.username or "admin", password=setup.password,
        max_current_A=o.max_current_A, min_voltage_V=o.min_voltage_V,
        max_voltage_V=o.max_voltage_V, step_dir=Path(o.step_dir) if o.step_dir else None,
        bts_step_dir=o.bts_step_dir, backup_dir=o.backup_dir)
    link = {} if o.timeout_s is None else {"timeout_s": o.timeout_s}
    return NewareBTS.from_address(host, config, port=int(port), **link)


INSTRUMENTS = (InstrumentSpec(
    name="neware.bts", kind="cycler", build=_build, options=NewareBTSOptions,
    capabilities=_capabilities, login=True,
    description="Neware BTS cyclers through the BTS API"),)
