"""The Neware BTS driver: exact message exchanges, then end to end against the wire simulator.

Reply fixtures follow the shape of replies captured from a real BTS 8.0 (aurora-neware's test
fixtures): an XML declaration, CR LF line ends, indentation, ``dev="27-21-1-1-0"`` in
``inquire`` and the misspelt ``donwload_resp``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pytest

from drivers.errors import CapabilityError, DriverError, TransportError
from drivers.neware_bts import (
    NewareBTS,
    NewareBTSConfig,
    Protection,
    redact_password,
    step_file,
)
from drivers.points import ChannelState, Readout
from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, VoltageSweep
from drivers.transports import ExpectedExchange
from drivers.transports.framed import FramedTransport
from simulators.wire.neware_bts import NewareBTSServer, parse_step_file
from tests.fakes import ResistorCell

Pairs = list[tuple[str | None, str | None]]
TAG = "cellseq-20250101120000-abc123"
GUID = str(uuid.uuid5(uuid.NAMESPACE_URL, TAG))
IDS = 'devtype="27" devid="21" subdevid="1" chlid="1"'
CH = f'ip="127.0.0.1" {IDS}'
CC = ConstantCurrent(0.01, 3600.0, 1.0, until_voltage_V=4.2)


def sent(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">{body}</bts>'


def answer(*lines: str) -> str:
    """A reply as BTS 8 formats it."""
    inner = "".join(f"  {line}\r\n" for line in lines)
    return f'<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n{inner}</bts>'


LOGIN = (sent("<cmd>connect</cmd><username>admin</username><password>s3cret</password>"
              "<type>bfgs</type>"), answer("<cmd>connect_resp</cmd>", "<result>ok</result>"))
DEVINFO = (sent("<cmd>getdevinfo</cmd>"), answer(
    "<cmd>getdevinfo_resp</cmd>",
    '<serverip count="1"><server ip="127.0.0.1" port="3306" /></serverip>',
    '<middle count="3">',
    '  <channel ip="127.0.0.1" devtype="27" devid="21" subdevid="2" Channelid="1">true</channel>',
    '  <channel ip="127.0.0.1" devtype="27" devid="21" subdevid="1" Channelid="2">false</channel>',
    '  <channel ip="127.0.0.1" devtype="27" devid="21" subdevid="1" Channelid="1">true</channel>',
    "</middle>"))
OPEN: Pairs = [LOGIN, DEVINFO]


def inquire(workstatus: str, barcode: str = "", voltage: str = "3.1") -> tuple[str, str]:
    return (sent(f'<cmd>inquire</cmd><list count="1"><inquire {CH} aux="0" barcode="1">true'
                 "</inquire></list>"),
            answer("<cmd>inquire_resp</cmd>", '<list count="1">',
                   f'  <inquire dev="27-21-1-1-0" cycle_id="1" step_id="1" step_type="cc"'
                   f' workstatus="{workstatus}" barcode="{barcode}" current="0.01"'
                   f' voltage="{voltage}" capacity="0" energy="0" totaltime="1.0"'
                   ' relativetime="1.0" open_or_close="0" log_code="102000" />', "</list>"))


def inquiredf(testid: int, count: int) -> tuple[str, str]:
    return (sent(f'<cmd>inquiredf</cmd><list count="1"><chl {IDS} testid="0" /></list>'),
            answer("<cmd>inquiredf_resp</cmd>", '<list count="1">',
                   f'  <chl {IDS} testid="{testid}" count="{count}">true</chl>', "</list>"))


def download(start: int, rows: list[tuple[int, int, float, float]], count: int | None = None,
             testid: int = 144) -> tuple[str, str]:
    """``rows``: (seqid, testtime in ms, volt, curr)."""
    count = len(rows) if count is None else count
    data = [f'  <data seqid="{s}" stepid="1" cycleid="1" steptype="cc" testtime="{ms}"'
            f' atime="2025-01-01 12:00:00" volt="{v}" curr="{i}" cap="0" eng="0" />'
            for s, ms, v, i in rows]
    return (sent(f'<cmd>download</cmd><download {IDS} auxid="0" testid="0" startpos="{start}"'
                 f' count="{count}" />'),
            answer("<cmd>donwload_resp</cmd>",
                   f'<download {IDS} testid="{testid}" startpos="{start}" count="{count}"'
                   ' auxid="0" />', f'<list count="{len(rows)}">', *data, "</list>"))


def start(text: str, result: str = "ok") -> tuple[str, str]:
    return (sent(f'<cmd>start</cmd><list count="1"><start {CH} barcode="{TAG}">{text}</start>'
                 "</list>"),
            answer("<cmd>start_resp</cmd>", '<list count="1">',
                   f"  <start {CH}>{result}</start>", "</list>"))


def stop(result: str = "ok") -> tuple[str, str]:
    return (sent(f'<cmd>stop</cmd><list count="1"><stop {CH}>true</stop></list>'),
            answer("<cmd>stop_resp</cmd>", '<list count="1">', f"  <stop {CH}>{result}</stop>",
                   "</list>"))


BTS_PATH = f"C:\\cellseq\\steps\\{TAG}.xml"
STARTED: Pairs = [inquire("finish", "old"), inquiredf(143, 500), start(BTS_PATH)]
STEP_FILE_CC = (
    '<?xml version="1.0" encoding="UTF-8"?><root><config type="Step File" version="17"'
    ' client_version="BTS Client 8.0.0.478(2024.06.24)(R3)" date="20250101120000"'
    f' Guid="{GUID}"><Head_Info><Operate Value="66" /><Scale Value="1" />'
    '<Start_Step Value="1" Hide_Ctrl_Step="0" /><Creator Value="cellseq" />'
    f'<Remark Value="{TAG}" /><RateType Value="103" /><MultCap Value="3600000" /></Head_Info>'
    '<Whole_Prt><Protect><Main><Volt><Upper Value="50000" /><Lower Value="0" /></Volt><Curr>'
    '<Upper Value="100" /><Lower Value="-100" /></Curr></Main></Protect><Record><Main>'
    '<Time Value="1000" /></Main></Record></Whole_Prt><Step_Info Num="2">'
    '<Step1 Step_ID="1" Step_Type="1"><Limit><Main><Curr Value="10" />'
    '<Time Value="3600000" /><Stop_Volt Value="42000" /></Main></Limit></Step1>'
    '<Step2 Step_ID="2" Step_Type="6" /></Step_Info><SMBUS>'
    '<SMBUS_Info Num="0" AdjacentInterval="0" /></SMBUS></config></root>')


def config(tmp_path: Path, **changes: Any) -> NewareBTSConfig:
    fields: dict[str, Any] = {"max_current_A": 0.1, "password": "s3cret",
                              "step_dir": tmp_path / "steps",
                              "bts_step_dir": "C:\\cellseq\\steps"}
    return NewareBTSConfig(**(fields | changes))


def bts(pairs: Pairs, cfg: NewareBTSConfig) -> tuple[NewareBTS, ExpectedExchange]:
    link = ExpectedExchange(pairs)
    return NewareBTS(link, cfg, tags=lambda: TAG), link


# -- open: login and channels -----------------------------------------------------------------
def test_open_logs_in_and_numbers_the_channels_in_id_order(tmp_path: Path) -> None:
    instrument, link = bts(OPEN, config(tmp_path))
    with link:
        instrument.open()
        assert instrument.channel_count == 3
        assert [str(instrument.channel(k).pipeline) for k in range(3)] == \
            ["21-1-1", "21-1-2", "21-2-1"]
    with pytest.raises(CapabilityError, match=r"^Neware BTS has channels 0\.\.2, not 3$"):
        instrument.channel(3)


def test_pipelines_choose_and_order_the_channels(tmp_path: Path) -> None:
    instrument, link = bts(OPEN, config(tmp_path, pipelines=((21, 2, 1), (21, 1, 1))))
    with link:
        instrument.open()
        assert [str(instrument.channel(k).pipeline) for k in range(2)] == ["21-2-1", "21-1-1"]


def test_a_pipeline_not_on_the_bts_is_refused_and_the_link_closed(tmp_path: Path) -> None:
    instrument, link = bts(OPEN, config(tmp_path, pipelines=((21, 3, 1),)))
    with link, pytest.raises(CapabilityError, match=r"^pipelines 21-3-1 are not on this BTS"):
        instrument.open()
    assert not link.is_open


def test_a_refused_login_names_the_user_never_the_password(tmp_path: Path) -> None:
    refused = (LOGIN[0], answer("<cmd>connect_resp</cmd>", "<result>false</result>"))
    instrument, link = bts([refused], config(tmp_path))
    with link, pytest.raises(DriverError, match=r"^the BTS refused the login of user 'admin'"
                                                r" \(result 'false'\)") as info:
        instrument.open()
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(instrument.config)


def test_no_channels_is_an_error(tmp_path: Path) -> None:
    empty = (DEVINFO[0], answer("<cmd>getdevinfo_resp</cmd>", '<middle count="0" />'))
    instrument, link = bts([LOGIN, empty], config(tmp_path))
    with link, pytest.raises(DriverError, match=r"^getdevinfo lists no channels"):
        instrument.open()


def test_redaction_blanks_the_password_only() -> None:
    assert redact_password(LOGIN[0]) == LOGIN[0].replace("s3cret", "***")


# -- start: the step file ------------------------------------------------------------------------
def test_start_writes_the_exact_step_file_and_starts_it_by_path(tmp_path: Path) -> None:
    instrument, link = bts([*OPEN, *STARTED], config(tmp_path))
    with link:
        instrument.open()
        instrument.channel(0).start(CC)
    assert (tmp_path / "steps" / f"{TAG}.xml").read_text(encoding="utf-8") == STEP_FILE_CC
    sidecar = json.loads((tmp_path / "steps" / f"{TAG}.json").read_text(encoding="utf-8"))
    assert sidecar["technique"] == "ConstantCurrent" and sidecar["v_ref"] == 3.1


def test_without_a_bts_folder_the_step_file_goes_inline(tmp_path: Path) -> None:
    pairs = [*OPEN, inquire("stop"), inquiredf(0, 0), start(escape(STEP_FILE_CC))]
    instrument, link = bts(pairs, config(tmp_path, step_dir=None, bts_step_dir=None))
    with link:
        instrument.open()
        instrument.channel(0).start(CC)


@pytest.mark.parametrize(("technique", "v_ref", "step"), [
    (ConstantCurrent(-0.002, 600.0, 5.0, until_voltage_V=2.5), 3.0,
     '<Step1 Step_ID="1" Step_Type="2"><Limit><Main><Curr Value="2" /><Time Value="600000" />'
     '<Stop_Volt Value="25000" /></Main></Limit></Step1>'),
    (ConstantVoltage(4.2, 600.0, 5.0, until_abs_current_A=1e-4), 4.0,
     '<Step1 Step_ID="1" Step_Type="3"><Limit><Main><Volt Value="42000" /><Curr Value="100" />'
     '<Time Value="600000" /><Stop_Curr Value="0.1" /></Main></Limit></Step1>'),
    (ConstantVoltage(3.5, 600.0, 5.0), 4.0,
     '<Step1 Step_ID="1" Step_Type="19"><Limit><Main><Volt Value="35000" />'
     '<Curr Value="100" /><Time Value="600000" /></Main></Limit></Step1>'),
    (ConstantVoltage(0.05, 600.0, 5.0, vs_ocv=True), 3.7,
     '<Step1 Step_ID="1" Step_Type="3"><Limit><Main><Volt Value="37500" />'),
    (OpenCircuit(1800.0, 10.0, record_dV_V=0.005), 3.7,
     '<Step1 Step_ID="1" Step_Type="4"><Limit><Main><Time Value="1800000" /></Main></Limit>'),
], ids=["cc-discharge", "cv-charge", "cv-discharge", "cv-vs-ocv", "rest"])
def test_each_technique_becomes_one_bts_step(technique: Any, v_ref: float, step: str) -> None:
    text = step_file(technique, TAG, Protection(4.3, 2.5, 0.1), v_ref, 0.1)
    assert step in text
    assert '<Step2 Step_ID="2" Step_Type="6" />' in text
    assert '<Volt><Upper Value="43000" /><Lower Value="25000" /></Volt>' in text
    if isinstance(technique, OpenCircuit):
        assert '<Record><Main><Time Value="10000" /><Volt Value="50" /></Main></Record>' in text


def test_the_simulator_reads_the_step_file_as_written() -> None:
    plan = parse_step_file(STEP_FILE_CC)
    assert plan.record_dt_s == 1.0
    assert plan.protect == {"v_max": 5.0, "v_min": 0.0, "i_max": 0.1, "i_min": -0.1}
    assert plan.steps[1].limits == {"Curr": 0.01, "Time": 3600.0, "Stop_Volt": 4.2}


@pytest.mark.parametrize(("technique", "match"), [
    (VoltageSweep((4.0,), 0.001, 1.0), r"VoltageSweep is not available on this channel"),
    (ConstantCurrent(0.5, 60.0, 1.0), r"current 0\.5 A exceeds the channel's range"),
    (ConstantCurrent(0.0, 60.0, 1.0), r"a 0 A constant current is a rest"),
    (ConstantCurrent(0.01, 60.0, 1.0, until_voltage_V=4.5),
     r"until_voltage_V 4\.5 V is beyond the channel's protection 2\.5\.\.4\.3 V"),
], ids=["sweep", "range", "zero", "protection"])
def test_start_refuses_before_sending(tmp_path: Path, technique: Any, match: str) -> None:
    cfg = config(tmp_path, protection=Protection(4.3, 2.5, 0.1))
    pairs = [*OPEN, inquire("finish")] if "protection" in match else OPEN
    instrument, link = bts(pairs, cfg)
    with link, pytest.raises(CapabilityError, match=match):
        instrument.open()
        instrument.channel(0).start(technique)


def test_start_refuses_a_working_channel(tmp_path: Path) -> None:
    instrument, link = bts([*OPEN, inquire("working", "someone-else")], config(tmp_path))
    with link, pytest.raises(DriverError, match=r"is working \(test 'someone-else'\); stop it"):
        instrument.open()
        instrument.channel(0).start(CC)


def test_a_refused_start_is_an_error(tmp_path: Path) -> None:
    pairs = [*OPEN, *STARTED[:2], start(BTS_PATH, "false"), inquire("finish", "old")]
    instrument, link = bts(pairs, config(tmp_path))
    with link, pytest.raises(DriverError, match=r"the BTS refused to start test cellseq-"):
        instrument.open()
        instrument.channel(0).start(CC)


def test_a_start_refused_because_it_already_runs_ours_counts(tmp_path: Path) -> None:
    """A start repeated after a dropped link is refused: the test is running, and ours."""
    pairs = [*OPEN, *STARTED[:2], start(BTS_PATH, "false"), inquire("working", TAG)]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        instrument.channel(0).start(CC)
        assert instrument.channel(0).running() == CC


# -- poll: status, counts, downloads --------------------------------------------------------------
def test_poll_downloads_new_points_and_ends_at_the_voltage_limit(tmp_path: Path) -> None:
    pairs = [*OPEN, *STARTED,
             inquire("working", TAG), inquiredf(144, 2),
             download(1, [(1, 0, 3.1, 0.01), (2, 1000, 3.11, 0.01)]),
             inquire("finish", TAG), inquiredf(144, 3), download(3, [(3, 1500, 4.1995, 0.01)]),
             ]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        channel = instrument.channel(0)
        channel.start(CC)
        first = channel.poll()
        assert first.state is ChannelState.RUNNING
        assert first.points.time_s.tolist() == [0.0, 1.0]
        assert first.points.voltage_V.tolist() == [3.1, 3.11]
        second = channel.poll()
        assert (second.state, second.end_reason) == (ChannelState.DONE, "voltage")
        assert second.points.time_s.tolist() == [1.5]
        again = channel.poll()             # no exchange: the test is over
        assert (again.state, again.end_reason, len(again.points)) == \
            (ChannelState.DONE, "voltage", 0)


def test_downloads_go_in_chunks_of_1000(tmp_path: Path) -> None:
    rows = [(s, 1000 * (s - 1), 3.1, 0.01) for s in range(1, 1501)]
    pairs = [*OPEN, *STARTED, inquire("working", TAG), inquiredf(144, 1500),
             download(1, rows[:1000]), download(1001, rows[1000:])]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        channel = instrument.channel(0)
        channel.start(CC)
        points = channel.poll().points
    assert len(points) == 1500 and np.all(np.diff(points.time_s) == 1.0)


def test_until_the_new_test_appears_the_channel_is_running_with_no_points(
        tmp_path: Path) -> None:
    pairs = [*OPEN, *STARTED, inquire("finish", "old"), inquiredf(143, 500)]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        channel = instrument.channel(0)
        channel.start(CC)
        readout = channel.poll()
    assert readout.state is ChannelState.RUNNING and len(readout.points) == 0


@pytest.mark.parametrize(("status", "state", "reason"), [
    ("protect", ChannelState.FAULT, "protect"),
    ("stop", ChannelState.FAULT, "stopped at the instrument"),
    ("finish", ChannelState.DONE, "finished"),
])
def test_workstatus_maps_to_the_channel_state(tmp_path: Path, status: str,
                                              state: ChannelState, reason: str) -> None:
    pairs = [*OPEN, *STARTED, inquire(status, TAG), inquiredf(144, 1),
             download(1, [(1, 2000, 3.5, 0.01)])]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        channel = instrument.channel(0)
        channel.start(CC)
        readout = channel.poll()
    assert (readout.state, readout.end_reason, len(readout.points)) == (state, reason, 1)


def test_a_paused_test_is_still_running(tmp_path: Path) -> None:
    pairs = [*OPEN, *STARTED, inquire("pause", TAG), inquiredf(144, 0)]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        channel = instrument.channel(0)
        channel.start(CC)
        readout = channel.poll()
    assert readout.state is ChannelState.RUNNING and readout.detail == {"paused": 1.0}


def test_a_short_is_ended_by_the_driver(tmp_path: Path) -> None:
    technique = ConstantCurrent(0.01, 3600.0, 1.0, short_below_V=0.01, settle_s=1.0)
    rows = [(1, 0, 0.005, 0.01), (2, 1000, 0.5, 0.01), (3, 2000, 0.004, 0.01),
            (4, 3000, 0.003, 0.01)]
    pairs = [*OPEN, *STARTED, inquire("working", TAG), inquiredf(144, 4), download(1, rows),
             stop()]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        channel = instrument.channel(0)
        channel.start(technique)
        readout = channel.poll()
    assert (readout.state, readout.end_reason) == (ChannelState.DONE, "short")
    assert readout.points.time_s.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(("reply", "match"), [
    (download(1, [(1, 0, 3.1, 0.01), (3, 2000, 3.1, 0.01)], count=2)[1],
     r"answered seqid 3 at position 1: a gap or a repeat"),
    (download(1, [(1, 0, 3.1, 0.01), (2, 1000, 3.1, 0.01)], testid=99)[1],
     r"download answered test 99, not ours \(144\)"),
    (download(1, [], count=2)[1], r"download of 2 points from 1 answered 0"),
    (download(1, [(1, 0, "nan", 0.01), (2, 1000, 3.1, 0.01)])[1],
     r"^download: volt='nan' is not a finite number$"),
], ids=["gap", "other-test", "none", "nan"])
def test_a_download_that_does_not_continue_exactly_is_an_error(tmp_path: Path, reply: str,
                                                               match: str) -> None:
    request = download(1, [], count=2)[0]
    pairs = [*OPEN, *STARTED, inquire("working", TAG), inquiredf(144, 2), (request, reply)]
    instrument, link = bts(pairs, config(tmp_path))
    with link, pytest.raises(DriverError, match=match):
        instrument.open()
        channel = instrument.channel(0)
        channel.start(CC)
        channel.poll()


# -- stop, voltage, running -------------------------------------------------------------------
def test_stop_sends_stop_and_a_refusal_on_an_idle_channel_is_fine(tmp_path: Path) -> None:
    pairs = [*OPEN, stop(), stop("false"), inquire("finish")]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        instrument.channel(0).stop()
        instrument.channel(0).stop()


def test_a_stop_that_leaves_the_channel_working_is_an_error(tmp_path: Path) -> None:
    pairs = [*OPEN, stop("false"), inquire("working", "x")]
    instrument, link = bts(pairs, config(tmp_path))
    with link, pytest.raises(DriverError, match=r"stop was refused and the channel is still"
                                                r" working$"):
        instrument.open()
        instrument.channel(0).stop()


def test_close_stops_only_the_tests_this_driver_runs(tmp_path: Path) -> None:
    pairs = [*OPEN, *STARTED, stop()]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        instrument.channel(0).start(CC)
        instrument.close()
    assert not link.is_open


def test_read_voltage_uses_inquire(tmp_path: Path) -> None:
    instrument, link = bts([*OPEN, inquire("finish", voltage="3.8834")], config(tmp_path))
    with link:
        instrument.open()
        assert instrument.channel(0).read_voltage() == 3.8834


@pytest.mark.parametrize("barcode", ["251203_sample_01", "cellseq-20250101120000-ffffff"],
                         ids=["foreign", "no-step-file"])
def test_running_is_none_for_a_test_it_cannot_recognise(tmp_path: Path, barcode: str) -> None:
    instrument, link = bts([*OPEN, inquire("working", barcode)], config(tmp_path))
    with link:
        instrument.open()
        assert instrument.channel(0).running() is None


# -- re-attaching with the step's attachment ----------------------------------------------------
FINISHED_ROWS = [(1, 0, 3.1, 0.01), (2, 1000, 3.11, 0.01), (3, 1500, 4.1995, 0.01)]


def test_reattach_takes_up_a_test_the_bts_finished_meanwhile(tmp_path: Path) -> None:
    """Found by its barcode though it no longer runs (its sidecar is gone: the barcode
    suffices); one poll downloads it all, from the start, and ends it as a live poll would."""
    pairs = [*OPEN, inquire("finish", TAG), inquiredf(144, 3),
             inquire("finish", TAG), inquiredf(144, 3), download(1, FINISHED_ROWS)]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        channel = instrument.channel(0)
        assert channel.reattach(CC, {"barcode": TAG, "previous_testid": "143"})
        assert channel.running() == CC and not channel.owns_test   # close() stops nothing
        readout = channel.poll()
        assert (readout.state, readout.end_reason) == (ChannelState.DONE, "voltage")
        assert readout.points.time_s.tolist() == [0.0, 1.0, 1.5]
        instrument.close()


@pytest.mark.parametrize(("status", "attachment"), [
    (inquire("finish", "cellseq-20250101130000-def456"), {"barcode": TAG}),
    (inquire("working", "251203_sample_01"), {"barcode": TAG}),
    (inquire("stop", TAG), {"barcode": TAG}),
], ids=["a-later-test", "a-foreign-test", "stopped"])
def test_reattach_refuses_what_the_attachment_does_not_name(
        tmp_path: Path, status: tuple[str, str], attachment: dict[str, str]) -> None:
    instrument, link = bts([*OPEN, status], config(tmp_path))
    with link:
        instrument.open()
        assert not instrument.channel(0).reattach(CC, attachment)
        assert not instrument.channel(0).owns_test


def test_reattach_refuses_another_test_id_under_the_same_barcode(tmp_path: Path) -> None:
    instrument, link = bts([*OPEN, inquire("finish", TAG), inquiredf(150, 3)], config(tmp_path))
    with link:
        instrument.open()
        assert not instrument.channel(0).reattach(CC, {"barcode": TAG, "testid": "144"})


# -- replies that are not what they should be ---------------------------------------------------
@pytest.mark.parametrize(("reply", "match"), [
    ("\xfe\xff\x15#?\x7f!~", r"^inquire: unreadable reply \(not well-formed"),
    ('<?xml version="1.0"?><bts version="1.0"><cmd>inquire_resp</cmd><list',
     r"^inquire: unreadable reply \(unclosed token"),
    ('<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
     "<bts><cmd>inquire_resp</cmd></bts>", r"^inquire: the reply declares a DOCTYPE; refused"),
    (answer("<cmd>stop_resp</cmd>"), r"^inquire: the reply answers 'stop_resp', not"
                                     r" inquire_resp"),
    (answer("<cmd>inquire_resp</cmd>", '<list count="0" />'),
     r"inquire answered 0 channels, not 1$"),
    (inquire("finish", voltage="3,88")[1], r"^inquire: voltage='3,88' is not a number$"),
    (inquire("charging")[1], r"inquire gives an unknown workstatus 'charging'$"),
], ids=["garbage", "truncated", "doctype", "wrong-answer", "no-channel", "number", "status"])
def test_a_bad_reply_is_a_clear_driver_error(tmp_path: Path, reply: str, match: str) -> None:
    instrument, link = bts([*OPEN, (inquire("x")[0], reply)], config(tmp_path))
    with link, pytest.raises(DriverError, match=match):
        instrument.open()
        instrument.channel(0).read_voltage()


def test_no_reply_is_a_transport_error(tmp_path: Path) -> None:
    instrument, link = bts([*OPEN, (inquire("x")[0], None)], config(tmp_path))
    with link, pytest.raises(TransportError):
        instrument.open()
        instrument.channel(0).read_voltage()


# -- end to end, against the wire simulator ---------------------------------------------------
FAST: dict[str, Any] = {"timeout_s": 0.5, "backoff_s": 0.01, "attempts": 3}


@pytest.fixture
def server() -> Iterator[NewareBTSServer]:
    with NewareBTSServer([ResistorCell(), ResistorCell()], speed=2000.0,
                         password="s3cret") as srv:
        yield srv


def connect(srv: NewareBTSServer, tmp_path: Path, **changes: Any) -> NewareBTS:
    cfg = config(tmp_path, bts_step_dir=None, **changes)
    instrument = NewareBTS.from_address(srv.host, cfg, port=srv.port, **FAST)
    instrument.open()
    return instrument


def run_to_end(channel: Any, limit_s: float = 5.0) -> list[Readout]:
    readouts, deadline = [], time.monotonic() + limit_s
    while time.monotonic() < deadline:
        readouts.append(channel.poll())
        if readouts[-1].state is not ChannelState.RUNNING:
            return readouts
        time.sleep(0.02)
    raise AssertionError("the technique did not end in time")


def times(readouts: list[Readout]) -> list[float]:
    return [float(t) for r in readouts for t in r.points.time_s]


def test_a_cc_charge_ends_at_its_voltage_limit(server: NewareBTSServer, tmp_path: Path) -> None:
    instrument = connect(server, tmp_path)
    channel = instrument.channel(0)
    channel.start(CC)                      # 3.1 V + 1 V/C * 0.01 A -> 4.2 V after 110 s
    readouts = run_to_end(channel)
    assert (readouts[-1].state, readouts[-1].end_reason) == (ChannelState.DONE, "voltage")
    assert times(readouts) == [float(s) for s in range(111)]
    # the last point, whichever poll brought it (under load the ending poll may bring none)
    last_V = [float(v) for r in readouts for v in r.points.voltage_V][-1]
    assert last_V == pytest.approx(4.2, abs=1e-9)
    assert server.status(0) == "finish" and server.status(1) == "finish"
    instrument.close()


def test_a_new_driver_re_attaches_and_fetches_what_was_recorded_meanwhile(
        server: NewareBTSServer, tmp_path: Path) -> None:
    slow = ConstantCurrent(0.0005, 3600.0, 1.0, until_voltage_V=4.2)  # 2390 s: 1.2 s here
    first = connect(server, tmp_path)
    first.channel(0).start(slow)
    time.sleep(0.05)
    before = first.channel(0).poll()
    assert before.state is ChannelState.RUNNING and len(before.points) > 10
    first._transport.close()               # the computer is gone; the BTS runs on
    time.sleep(0.1)

    second = connect(server, tmp_path)
    channel = second.channel(0)
    assert channel.running() == slow
    channel.skip_through(float(before.points.time_s[-1]))
    after = run_to_end(channel)
    assert after[-1].end_reason == "voltage"
    recorded = [t for _, t, _, _ in server.recorded(0)]
    assert times([before, *after]) == recorded == [float(s) for s in range(2391)]

    third = connect(server, tmp_path)      # the test has finished: nothing to re-attach to
    assert third.channel(0).running() is None
    second.close()
    third.close()


def test_re_attaching_without_skipping_returns_the_test_from_its_start(
        server: NewareBTSServer, tmp_path: Path) -> None:
    first = connect(server, tmp_path)
    first.channel(1).start(ConstantCurrent(0.0005, 3600.0, 1.0, until_voltage_V=4.2))
    first._transport.close()
    second = connect(server, tmp_path)
    channel = second.channel(1)
    assert channel.running() is not None
    assert times(run_to_end(channel)) == [float(s) for s in range(2391)]
    second.close()


@pytest.mark.parametrize(("technique", "trip", "end"), [
    (CC, False, (ChannelState.DONE, "voltage")),                  # 110 s: 55 ms here
    (OpenCircuit(20.0, 5.0), False, (ChannelState.DONE, "duration")),
    (ConstantCurrent(0.0005, 3600.0, 1.0, until_voltage_V=4.2), True,
     (ChannelState.FAULT, "protect")),
], ids=["voltage", "duration", "protect"])
def test_a_test_that_ended_while_no_driver_was_attached_is_taken_up(
        server: NewareBTSServer, tmp_path: Path, technique: Any, trip: bool,
        end: tuple[ChannelState, str]) -> None:
    first = connect(server, tmp_path)
    first.channel(0).start(technique)
    attachment = first.channel(0).attachment()
    assert attachment is not None and set(attachment) == {"barcode", "previous_testid"}
    first._transport.close()               # the computer is gone; the BTS runs on
    if trip:
        server.faults.trip_protect(0)      # at the next request
    else:
        deadline = time.monotonic() + 2.0
        while server.status(0) == "working" and time.monotonic() < deadline:
            time.sleep(0.01)

    second = connect(server, tmp_path)
    channel = second.channel(0)
    assert server.status(0) == ("protect" if trip else "finish")
    assert channel.reattach(technique, attachment)
    assert channel.reattach(technique, attachment)     # asking again changes nothing
    readouts = run_to_end(channel)
    assert (readouts[-1].state, readouts[-1].end_reason) == end
    recorded = [t for _, t, _, _ in server.recorded(0)]          # every point, once
    assert len(recorded) > 1 and times(readouts) == pytest.approx(recorded, abs=1e-3)
    second.close()


def test_an_attachment_names_one_test_only(server: NewareBTSServer, tmp_path: Path) -> None:
    first = connect(server, tmp_path)
    channel = first.channel(0)
    older = OpenCircuit(20.0, 5.0)
    channel.start(older)
    old = channel.attachment()
    run_to_end(channel)
    newer = ConstantCurrent(0.0005, 3600.0, 1.0, until_voltage_V=4.2)
    channel.start(newer)
    new = channel.attachment()
    assert old is not None and new is not None and old["barcode"] != new["barcode"]
    first._transport.close()

    second = connect(server, tmp_path)
    again = second.channel(0)
    assert not again.reattach(older, old)               # another test has been started since
    assert not again.reattach(older, new)               # the sidecar names another technique
    assert again.reattach(newer, new) and again.owns_test
    second.close()
    assert server.status(0) == "stop"


def test_without_an_attachment_only_a_running_test_is_taken_up(server: NewareBTSServer,
                                                             tmp_path: Path) -> None:
    first = connect(server, tmp_path)
    first.channel(0).start(OpenCircuit(20.0, 5.0))
    first.channel(1).start(ConstantCurrent(0.0005, 3600.0, 1.0, until_voltage_V=4.2))
    first._transport.close()
    while server.status(0) == "working":
        time.sleep(0.01)

    second = connect(server, tmp_path)
    assert not second.channel(0).reattach(OpenCircuit(20.0, 5.0), None)   # finished: as before
    assert second.channel(1).reattach(ConstantCurrent(0.0005, 3600.0, 1.0,
                                                      until_voltage_V=4.2), None)
    second.close()


def test_the_password_never_reaches_the_traffic_log(server: NewareBTSServer, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cellseq.traffic")
    instrument = connect(server, tmp_path)
    instrument.channel(0).read_voltage()
    instrument.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "<password>***</password>" in logged and "s3cret" not in logged


def test_a_wrong_password_is_refused_without_showing_it(server: NewareBTSServer,
                                                        tmp_path: Path) -> None:
    with pytest.raises(DriverError, match=r"^the BTS refused the login") as info:
        connect(server, tmp_path, password="wrong-one")
    assert "wrong-one" not in str(info.value)


def test_a_timed_out_login_does_not_show_the_password(server: NewareBTSServer,
                                                      tmp_path: Path) -> None:
    server.faults.delay_replies(1.0)
    cfg = config(tmp_path, bts_step_dir=None)
    instrument = NewareBTS.from_address(server.host, cfg, port=server.port, timeout_s=0.1,
                                        attempts=1)
    with pytest.raises(TransportError, match=r"no reply to .*within 0\.1 s") as info:
        instrument.open()
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("fault", ["drop_next", "truncate_next"])
def test_a_dropped_or_cut_connection_is_survived(server: NewareBTSServer, tmp_path: Path,
                                                 fault: str) -> None:
    instrument = connect(server, tmp_path)
    channel = instrument.channel(0)
    channel.start(CC)
    getattr(server.faults, fault)()        # the reconnect logs in again before the retry
    readouts = run_to_end(channel)
    assert readouts[-1].end_reason == "voltage"
    assert times(readouts) == [float(s) for s in range(111)]
    instrument.close()


def test_garbage_is_a_driver_error_and_the_next_poll_goes_on(server: NewareBTSServer,
                                                             tmp_path: Path) -> None:
    instrument = connect(server, tmp_path)
    channel = instrument.channel(0)
    channel.start(CC)
    server.faults.garbage_next()
    with pytest.raises(DriverError, match=r"^inquire: unreadable reply"):
        channel.poll()
    readouts = run_to_end(channel)
    assert times(readouts) == [float(s) for s in range(111)]
    instrument.close()


def test_replies_too_late_are_a_timeout_then_it_goes_on(server: NewareBTSServer,
                                                        tmp_path: Path) -> None:
    instrument = connect(server, tmp_path)
    server.faults.delay_replies(0.8)
    with pytest.raises(TransportError, match=r"no reply to .*within 0\.5 s"):
        instrument.channel(0).read_voltage()
    server.faults.delay_replies(0.0)
    assert instrument.channel(0).read_voltage() == pytest.approx(3.0)
    instrument.close()


def test_a_refused_command_is_a_driver_error(server: NewareBTSServer, tmp_path: Path) -> None:
    instrument = connect(server, tmp_path)
    server.faults.refuse_next()            # the next command is the inquire before the start
    with pytest.raises(DriverError, match=r"inquire gives an unknown workstatus None"):
        instrument.channel(0).start(CC)
    assert server.status(0) == "finish"
    instrument.close()


def test_a_step_file_the_bts_cannot_read_is_a_refused_start(server: NewareBTSServer,
                                                             tmp_path: Path) -> None:
    cfg = config(tmp_path, bts_step_dir=str(tmp_path / "not-shared"))
    instrument = NewareBTS.from_address(server.host, cfg, port=server.port, **FAST)
    instrument.open()
    with pytest.raises(DriverError, match=r"the BTS refused to start test cellseq-.*that the BTS"
                                          r" PC can read the step file$"):
        instrument.channel(0).start(CC)
    assert server.status(0) == "finish"
    instrument.close()


def test_a_protection_trip_is_a_channel_fault(server: NewareBTSServer, tmp_path: Path) -> None:
    instrument = connect(server, tmp_path)
    channel = instrument.channel(0)
    channel.start(ConstantCurrent(0.001, 3600.0, 1.0, until_voltage_V=4.2))
    server.faults.trip_protect(0)
    readout = channel.poll()
    assert (readout.state, readout.end_reason) == (ChannelState.FAULT, "protect")
    assert server.status(0) == "protect"
    instrument.close()


def test_the_bts_enforces_the_cells_protection(server: NewareBTSServer, tmp_path: Path) -> None:
    instrument = connect(server, tmp_path)
    channel = instrument.channel(1)
    channel.set_protection(Protection(max_voltage_V=3.5, min_voltage_V=2.5, max_current_A=0.05))
    channel.start(ConstantCurrent(0.01, 3600.0, 1.0))          # no cut-off: 3.5 V at 40 s
    readouts = run_to_end(channel)
    assert (readouts[-1].state, readouts[-1].end_reason) == (ChannelState.FAULT, "protect")
    assert times(readouts)[-1] == 41.0 and readouts[-1].points.voltage_V[-1] > 3.5
    instrument.close()


def test_the_driver_refuses_a_line_transport(tmp_path: Path) -> None:
    from drivers.transports.serial import SerialTransport
    with pytest.raises(TypeError, match=r"needs a FramedTransport"):
        NewareBTS(SerialTransport("socket://127.0.0.1:1"), config(tmp_path))
    assert isinstance(NewareBTS.from_address("h", config(tmp_path))._transport, FramedTransport)


def test_a_cv_hold_runs_to_its_time_limit(server: NewareBTSServer, tmp_path: Path) -> None:
    instrument = connect(server, tmp_path)
    channel = instrument.channel(0)
    channel.start(ConstantVoltage(3.5, 30.0, 1.0, until_abs_current_A=1e-4))
    readouts = run_to_end(channel)
    assert (readouts[-1].state, readouts[-1].end_reason) == (ChannelState.DONE, "duration")
    points = readouts[-1].points
    assert times(readouts)[-1] == 30.0 and points.voltage_V[-1] == 3.5
    assert points.current_A[-1] == pytest.approx(0.05)        # (3.5 V - 3 V) / 10 Ohm
    instrument.close()


def test_the_simulator_wants_a_login_on_every_connection(server: NewareBTSServer) -> None:
    status = sent(f'<cmd>getchlstatus</cmd><list count="1"><status {CH}>true</status></list>')
    with FramedTransport(f"tcp://{server.host}:{server.port}", terminator="\n\n#\r\n",
                         timeout_s=0.5) as link:
        assert "<result>false: not logged in</result>" in link.query(status)
        assert "<result>ok</result>" in link.query(LOGIN[0])
        reply = link.query(status)
    assert reply == answer("<cmd>getchlstatus_resp</cmd>", '<list count="1">',
                           f'  <status {CH} reservepause="1">finish</status>', "</list>")


def test_start_by_path_when_the_bts_reads_the_step_folder(server: NewareBTSServer,
                                                          tmp_path: Path) -> None:
    cfg = config(tmp_path, bts_step_dir=str(tmp_path / "steps"))   # the BTS PC's own folder
    instrument = NewareBTS.from_address(server.host, cfg, port=server.port, **FAST)
    instrument.open()
    channel = instrument.channel(1)
    channel.start(OpenCircuit(20.0, 5.0))
    readouts = run_to_end(channel)
    assert readouts[-1].end_reason == "duration" and times(readouts) == [0, 5, 10, 15, 20]
    instrument.close()


def test_a_short_relative_to_the_cells_own_voltage_is_ended_by_the_driver(
        tmp_path: Path) -> None:
    """0.18 V collapsing to 12 mV, above the 5 mV floor (a liquid cell): still a short."""
    technique = ConstantCurrent(0.006, 3600.0, 1.0, short_below_V=0.005, settle_s=1.0)
    rows = [(1, 0, 0.18, 0.006), (2, 1000, 0.18, 0.006), (3, 2000, 0.012, 0.006),
            (4, 3000, 0.012, 0.006)]
    pairs = [*OPEN, *STARTED, inquire("working", TAG), inquiredf(144, 4), download(1, rows),
             stop()]
    instrument, link = bts(pairs, config(tmp_path))
    with link:
        instrument.open()
        channel = instrument.channel(0)
        channel.start(technique)
        readout = channel.poll()
    assert (readout.state, readout.end_reason) == (ChannelState.DONE, "short")
    assert readout.points.time_s.tolist() == [0.0, 1.0, 2.0]
