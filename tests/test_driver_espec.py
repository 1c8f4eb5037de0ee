"""The ESPEC chamber driver: exact exchanges (ExpectedExchange), then end to end on the wire."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from drivers.errors import CapabilityError, TransportError
from drivers.espec import EspecChamber, EspecConfig, EspecError
from drivers.interfaces import ChamberMode, ChamberReading
from drivers.transports import ExpectedExchange
from simulators.wire import EspecServer

NO_PAUSE = EspecConfig(query_pause_s=0.0, setting_pause_s=0.0)
STATUS = ("TEMP?", "23.0,25.0,100.0,-40.0")


def chamber(pairs: list[tuple[str | None, str | None]],
            config: EspecConfig = NO_PAUSE) -> tuple[EspecChamber, ExpectedExchange]:
    link = ExpectedExchange(pairs)
    return EspecChamber(link, config), link


# -- every operation, exchange by exchange ---------------------------------------------------
def test_open_asks_the_controller_type() -> None:
    driver, link = chamber([("TYPE?", "T,T,S2,160.0")])
    with link:
        driver.open()
        assert driver.type_info == "T,T,S2,160.0"


def test_read_is_temp_then_mon() -> None:
    driver, link = chamber([STATUS, ("MON?", "23.0,,CONSTANT,0")])
    with link:
        assert driver.read() == ChamberReading(23.0, 25.0, ChamberMode.CONSTANT, ())


def test_read_with_negative_temperatures() -> None:
    driver, link = chamber([("TEMP?", "-19.8,-20.0,100.0,-40.0"), ("MON?", "-19.8,,STANDBY,0")])
    with link:
        assert driver.read() == ChamberReading(-19.8, -20.0, ChamberMode.STANDBY, ())


def test_read_asks_for_the_alarms_only_when_there_are_some() -> None:
    driver, link = chamber([STATUS, ("MON?", "23.0,,OFF,2"), ("ALARM?", "2,12,34")])
    with link:
        assert driver.read() == ChamberReading(23.0, 25.0, ChamberMode.OFF, ("12", "34"))


def test_set_temperature_sets_the_setpoint_then_constant_mode() -> None:
    driver, link = chamber([("TEMP, S-20.0", "OK:TEMP, S-20.0"),
                            ("MODE, CONSTANT", "OK:MODE, CONSTANT")])
    with link:
        driver.set_temperature_C(-20.0)


@pytest.mark.parametrize(("setpoint", "sent"), [(25.04, "S25.0"), (-0.04, "S0.0"),
                                                (99.96, "S100.0")])
def test_setpoints_are_rounded_to_the_controllers_resolution(setpoint: float, sent: str) -> None:
    driver, link = chamber([(f"TEMP, {sent}", f"OK:TEMP, {sent}"),
                            ("MODE, CONSTANT", "OK:MODE, CONSTANT")])
    with link:
        driver.set_temperature_C(setpoint)


def test_standby_and_off() -> None:
    driver, link = chamber([("MODE, STANDBY", "OK:MODE, STANDBY"), ("MODE, OFF", "OK:MODE, OFF")])
    with link:
        driver.standby()
        driver.power_off()


def test_close_leaves_the_chamber_as_it_is() -> None:
    driver, link = chamber([])
    with link:
        driver.close()
    assert not link.is_open


def test_rs485_address_prefixes_every_command() -> None:
    config = EspecConfig(rs485_address=1, query_pause_s=0.0, setting_pause_s=0.0)
    driver, link = chamber([("1,TEMP?", "23.0,25.0,100.0,-40.0"), ("1,MON?", "23.0,,CONSTANT,0"),
                            ("1,MODE, STANDBY", "OK:MODE, STANDBY")], config)
    with link:
        driver.read()
        driver.standby()


def test_a_setpoint_outside_the_range_is_refused_before_anything_is_sent() -> None:
    driver, link = chamber([])
    with link, pytest.raises(CapabilityError, match=r"^setpoint 120 degC is outside"):
        driver.set_temperature_C(120.0)


def test_pauses_wait_out_only_what_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("drivers.espec.time.sleep", waits.append)
    driver, link = chamber([("MODE, STANDBY", "OK:MODE, STANDBY"), STATUS,
                            ("MON?", "23.0,,STANDBY,0")],
                           EspecConfig(query_pause_s=0.2, setting_pause_s=0.5))
    with link:
        driver.standby()
        driver.read()
    assert len(waits) == 2
    assert 0.4 < waits[0] <= 0.5 and 0.1 < waits[1] <= 0.2


# -- refusals and replies that cannot be read ------------------------------------------------
def test_na_refusal_of_a_setting_names_the_command() -> None:
    driver, link = chamber([("TEMP, S25.0", "NA:DATA OUT OF RANGE")])
    with link, pytest.raises(EspecError, match=r"^TEMP, S25\.0 refused: 'NA:DATA OUT OF RANGE'$"):
        driver.set_temperature_C(25.0)


def test_na_refusal_of_a_query_names_the_command() -> None:
    driver, link = chamber([("TEMP?", "NA:CMD ERR")])
    with link, pytest.raises(EspecError, match=r"^TEMP\? refused: 'NA:CMD ERR'$"):
        driver.read()


@pytest.mark.parametrize("reply", [
    "\ufffd\ufffd#?\x7f!~",           # garbage
    "23.0,25",                        # cut short
    "23.0,25.0,100.0",                # a field missing
    "23.0,25.0,100.0,-40.0,7",        # a field too many
    "nan,25.0,100.0,-40.0",           # not a decimal
    "23.0,2 5.0,100.0,-40.0",
    "23.0,25.0,100.0,",
])
def test_an_unreadable_temperature_is_an_error_never_a_value(reply: str) -> None:
    driver, link = chamber([("TEMP?", reply)])
    with link, pytest.raises(EspecError, match=r"^TEMP\? answered"):
        driver.read()


@pytest.mark.parametrize(("reply", "message"), [
    ("23.0,,HEATING,0", r"^MON\? answered an unknown mode 'HEATING'"),
    ("23.0,,RUN,0", r"^MON\?: the chamber runs a program of its own"),
    ("23.0,,CONSTANT,x", r"^MON\? answered '23.0,,CONSTANT,x': 'x' is not an alarm count$"),
    ("23.0,CONSTANT,0", r"^MON\? answered '23.0,CONSTANT,0': expected 4"),
])
def test_an_unreadable_monitor_reply_is_an_error(reply: str, message: str) -> None:
    driver, link = chamber([STATUS, ("MON?", reply)])
    with link, pytest.raises(EspecError, match=message):
        driver.read()


@pytest.mark.parametrize("reply", ["2,12", "1,12,34", "1,ab", "x"])
def test_an_alarm_list_that_does_not_add_up_is_an_error(reply: str) -> None:
    driver, link = chamber([STATUS, ("MON?", "23.0,,CONSTANT,1"), ("ALARM?", reply)])
    with link, pytest.raises(EspecError, match=r"^ALARM\? answered"):
        driver.read()


def test_a_setting_answered_with_another_echo_is_an_error() -> None:
    driver, link = chamber([("MODE, STANDBY", "OK:MODE, CONSTANT")])
    with link, pytest.raises(EspecError, match=r"^MODE, STANDBY answered 'OK:MODE, CONSTANT'"):
        driver.standby()


def test_no_reply_is_a_transport_error_naming_the_command() -> None:
    driver, link = chamber([("TEMP?", None)])
    with link, pytest.raises(TransportError, match=r"^ESPEC TEMP\?: timed out"):
        driver.read()


def test_open_closes_the_link_again_when_the_chamber_does_not_answer() -> None:
    driver, link = chamber([("TYPE?", "NA:CMD ERR")])
    with link, pytest.raises(EspecError):
        driver.open()
    assert not link.is_open


# -- end to end: the real driver and transports against the wire simulator ------------------
@pytest.fixture
def server() -> Iterator[EspecServer]:
    with EspecServer(speed=600.0, noise_K=0.0, tau_s=600.0) as srv:
        yield srv


def connect(srv: EspecServer, config: EspecConfig = NO_PAUSE, visa: bool = False,
            attempts: int = 2) -> EspecChamber:
    address = srv.visa_address if visa else srv.socket_url
    driver = EspecChamber.from_address(address, config, timeout_s=0.2, attempts=attempts,
                                       backoff_s=0.01)
    driver.open()
    return driver


@pytest.mark.parametrize("visa", [False, True], ids=["serial", "visa"])
def test_end_to_end_the_chamber_heads_for_a_negative_setpoint(server: EspecServer,
                                                              visa: bool) -> None:
    driver = connect(server, visa=visa)
    try:
        assert driver.type_info == "T,T,S2,100.0"
        first = driver.read()
        assert first.mode is ChamberMode.STANDBY and first.temperature_C == pytest.approx(22.0)
        driver.set_temperature_C(-20.0)
        time.sleep(0.3)                                  # 180 s of chamber time
        reading = driver.read()
        assert reading.mode is ChamberMode.CONSTANT and reading.setpoint_C == -20.0
        assert -22.0 < reading.temperature_C < 21.0        # on its way (3 % overshoot)
        driver.standby()
        assert driver.read().mode is ChamberMode.STANDBY
    finally:
        driver.close()


def test_end_to_end_state_outlives_the_connection(server: EspecServer) -> None:
    first = connect(server)
    first.set_temperature_C(40.0)
    first.close()
    second = connect(server)
    reading = second.read()
    second.close()
    assert (reading.mode, reading.setpoint_C) == (ChamberMode.CONSTANT, 40.0)


def test_end_to_end_alarm(server: EspecServer) -> None:
    driver = connect(server)
    server.faults.raise_alarm(12)
    server.faults.raise_alarm(40)
    assert driver.read().alarms == ("12", "40")
    server.faults.clear_alarms()
    assert driver.read().alarms == ()
    driver.close()


def test_end_to_end_refusal(server: EspecServer) -> None:
    driver = connect(server)
    server.faults.refuse_next()
    with pytest.raises(EspecError, match=r"^TEMP\? refused: 'NA:CONT NOT READY-1'$"):
        driver.read()
    assert driver.read().mode is ChamberMode.STANDBY
    driver.close()


def test_end_to_end_the_simulator_refuses_out_of_range(server: EspecServer) -> None:
    driver = connect(server, EspecConfig(query_pause_s=0.0, setting_pause_s=0.0, max_C=150.0))
    with pytest.raises(EspecError, match=r"^TEMP, S120\.0 refused: 'NA:DATA OUT OF RANGE'$"):
        driver.set_temperature_C(120.0)
    driver.close()


def test_end_to_end_garbage_is_an_error_then_the_link_recovers(server: EspecServer) -> None:
    driver = connect(server)
    server.faults.garbage_next()
    with pytest.raises(EspecError, match=r"^TEMP\? answered"):
        driver.read()
    assert driver.read().temperature_C == pytest.approx(22.0)
    driver.close()


def test_end_to_end_a_dropped_connection_is_reconnected(server: EspecServer) -> None:
    driver = connect(server)
    server.faults.drop_next()
    assert driver.read().mode is ChamberMode.STANDBY
    driver.close()


def test_end_to_end_a_slow_chamber_is_a_transport_error(server: EspecServer) -> None:
    driver = connect(server)
    server.faults.delay_replies(1.0)
    began = time.monotonic()
    with pytest.raises(TransportError, match=r"^ESPEC TEMP\?: socket://.*no reply"):
        driver.read()
    assert time.monotonic() - began < 1.0
    server.faults.delay_replies(0.0)
    assert driver.read().mode is ChamberMode.STANDBY
    driver.close()


def test_end_to_end_rs485_address() -> None:
    with EspecServer(rs485_address=3, noise_K=0.0) as srv:
        right = connect(srv, EspecConfig(rs485_address=3, query_pause_s=0.0,
                                         setting_pause_s=0.0))
        right.standby()
        right.close()
        with pytest.raises(TransportError, match="no reply"):
            connect(srv, attempts=1)             # no address: nobody on the bus answers
