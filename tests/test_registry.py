"""One spec per instrument: station validation, pre-flight and runs read the drivers' specs, and
an instrument declared in a new module alone is picked up by all of them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import drivers
from drivers.techniques import (
    END_CONDITIONS,
    ConstantCurrent,
    ConstantVoltage,
    Impedance,
    VoltageSweep,
)
from sequencer import registry
from sequencer.cli import app
from sequencer.serve import served_spec
from sequencer.station import simulated_station
from simulators.instruments import CYCLER_CAPABILITIES, VSP300_CAPABILITIES

SKETCH = Path(__file__).parent / "sketch_drivers"

PROTOCOL = """
campaign: t
cells:
  - {id: c1, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: e
    cells: [c1]
    steps:
      - {kind: rest, duration: 10 min}
      - {kind: constant_current, direction: charge, current: CURRENT, duration: 10 min}
"""


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def files(tmp_path: Path, station: str, current: str = "50 mA") -> tuple[str, str]:
    protocol, path = tmp_path / "protocol.yaml", tmp_path / "st.yaml"
    protocol.write_text(PROTOCOL.replace("CURRENT", current))
    path.write_text(textwrap.dedent(station))
    return str(protocol), str(path)


def on_station(tmp_path: Path, station: str, current: str = "50 mA") -> tuple[str, ...]:
    protocol, path = files(tmp_path, station, current)
    return protocol, "--station", path


BTS = """\
    station: bench
    instruments:
      bts: {driver: neware.bts, address: "tcp://192.0.2.30:502", channels: 8,
            password_env: BTS_PASSWORD, options: OPTIONS}
    cells:
      c1: {instrument: bts, channel: 0}
    """


def test_the_registry_holds_every_instrument_once_and_imports_no_link_library():
    specs = registry.specs()
    assert {n: s.kind for n, s in specs.items()} == {
        "biologic.vsp300": "potentiostat", "keithley2450": "cycler", "neware.bts": "cycler",
        "espec": "chamber", "sim.potentiostat": "potentiostat", "sim.cycler": "cycler",
        "sim.chamber": "chamber"}
    assert {n for n, s in specs.items() if s.simulated} == {"sim.potentiostat", "sim.cycler",
                                                           "sim.chamber"}
    assert registry.served("cycler") == ["keithley2450", "neware.bts"]
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from sequencer import registry; registry.specs();"
         " print(sorted({'pyvisa', 'serial', 'easy_biologic'} & set(sys.modules)))"],
        capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_simulators_take_their_ratings_from_the_drivers():
    def rated(name: str, **options: object):
        spec = registry.spec(name)
        return spec.capabilities(spec.options(**options))

    assert rated("sim.potentiostat") == rated("biologic.vsp300")
    sim, bts = rated("sim.cycler"), rated("neware.bts", max_current_A=0.1, min_voltage_V=-5)
    # the BTS's ratings, plus what cycler firmware runs that no real driver offers yet
    assert sim == replace(bts, holds_vs_ocv=False, ends_on=frozenset(END_CONDITIONS),
                          techniques=bts.techniques | {"ConstantPower", "ConstantResistance",
                                                       "Profile"})
    assert rated("sim.cycler", max_current_A=2.0).max_current_A == 2.0
    assert sim == CYCLER_CAPABILITIES and rated("biologic.vsp300") == VSP300_CAPABILITIES


@pytest.mark.parametrize(("options", "current", "code", "message"), [
    ("{max_current_A: 5}", "0.5 A", 0, ""),
    ("{max_current_A: 0.01}", "50 mA", 2,
     "protocol.yaml:10: experiments[0].steps[1]: cell c1: current 0.05 A exceeds the channel's"
     " range of +-0.01 A"),
    ("{max_current_A: 0.1}", "0.5 A", 2, "current 0.5 A exceeds the channel's range of +-0.1 A"),
], ids=["rated-5A-takes-0.5A", "rated-10mA-refuses-50mA", "rated-100mA-refuses-0.5A"])
def test_a_bts_is_checked_against_the_ratings_its_station_gives(tmp_path, options, current,
                                                                 code, message):
    code_, output = cli("plan", *on_station(tmp_path, BTS.replace("OPTIONS", options), current))
    assert code_ == code, output
    assert message in output


@pytest.mark.parametrize(("instrument", "message"), [
    ('{driver: neware.bts, address: "tcp://h:502", channels: 8, options: {max_curent_A: 5}}',
     "st.yaml:3: instruments.x.options: max_current_A: required by neware.bts; max_curent_A:"
     " unknown option; neware.bts takes: timeout_s, max_current_A,"),
    ('{driver: neware.bts, address: "tcp://h:502", channels: 8, options: {max_current_A: "5"}}',
     "st.yaml:3: instruments.x.options: max_current_A: Input should be a valid number (got"
     " '5')"),
    ('{driver: keithley2450, address: "TCPIP0::h::5025::SOCKET", options: {max_current_A: 2}}',
     "st.yaml:3: instruments.x.options: max_current_A: Input should be less than or equal to"
     " 1.05 (got 2)"),
    ('{driver: keithley2450, address: "TCPIP0::h::5025::SOCKET", channels: 2}',
     "st.yaml:3: instruments.x: a keithley2450 has one channel"),
    ('{driver: neware.bts, address: "tcp://h:502", options: {max_current_A: 5}}',
     "st.yaml:3: instruments.x: a neware.bts needs 'channels'"),
    ('{driver: keithley2450, address: "TCPIP0::h::5025::SOCKET", password_env: PW}',
     "st.yaml:3: instruments.x: a keithley2450 takes no username or password"),
    ("{driver: sim.potentiostat, channels: 2, options: {max_output_A: 1}}",
     "st.yaml:3: instruments.x.options: max_output_A: unknown option; sim.potentiostat takes:"
     " none"),
    ("{driver: acme.cycler, channels: 2}",
     "st.yaml:3: instruments.x.driver: unknown driver 'acme.cycler'; known: biologic.vsp300,"
     " espec, keithley2450, neware.bts, sim.chamber, sim.cycler, sim.potentiostat"),
])
def test_station_options_and_channels_are_checked_against_the_drivers_spec(tmp_path,
                                                                          instrument, message):
    station = f"""\
    station: bench
    instruments:
      x: {instrument}
    cells:
      c1: {{instrument: x, channel: 0}}
    """
    code, output = cli("plan", *on_station(tmp_path, station))
    assert code == 2 and message in output, output
    assert "Traceback" not in output


def test_a_chamber_range_comes_from_its_options(tmp_path):
    station = """\
    station: bench
    instruments:
      cyc: {driver: sim.cycler, channels: 2}
      oven: {driver: sim.chamber, options: {min_C: 20, max_C: 50}}
    cells:
      c1: {instrument: cyc, channel: 0, chamber: oven}
    """
    protocol, path = files(tmp_path, station, "1 mA")
    Path(protocol).write_text(Path(protocol).read_text().replace(
        "      - {kind: rest", "      - {kind: set_temperature, target: 60 degC}\n"
        "      - {kind: rest"))
    code, output = cli("plan", protocol, "--station", path)
    assert code == 2
    assert "experiments[0].steps[0]: target 60 degC is outside the chamber's range 20..50 degC"\
        in output


def test_the_dry_run_places_cells_by_the_techniques_they_plan(tmp_path, write_yaml):
    from protocols import load_campaign

    steps = {"ca-ref": "{kind: chronoamperometry, voltage: 10 mV, duration: 1 h}",
             "ca-ocv": "{kind: chronoamperometry, voltage: 10 mV, vs: ocv, duration: 1 h}",
             "peis": "{kind: peis, f_start: 1 MHz, f_end: 1 Hz, amplitude: 10 mV}",
             "lsv": "{kind: lsv, vertex: 1 V, scan_rate: 1 mV/s}",
             "cc": "{kind: constant_current, direction: charge, current: 1 mA, duration: 1 h}"}
    cells = "".join(f"  - {{id: {k}, kind: symmetric_li, electrolyte: AIOSE, thickness:"
                    " 300 um, diameter: 16 mm}\n" for k in steps)
    experiments = "".join(f"  - name: {k}\n    cells: [{k}]\n    steps: [{s}]\n"
                          for k, s in steps.items())
    campaign = load_campaign(write_yaml(f"campaign: t\ncells:\n{cells}experiments:\n"
                                        f"{experiments}"))
    station = simulated_station(campaign)
    kinds = {c: station.instruments[p.instrument].driver for c, p in station.cells.items()}
    assert kinds == {"ca-ref": "sim.cycler", "ca-ocv": "sim.potentiostat",
                     "peis": "sim.potentiostat", "lsv": "sim.potentiostat",
                     "cc": "sim.cycler"}
    assert CYCLER_CAPABILITIES.offers(ConstantVoltage(0.01, 60, 1)) and not \
        CYCLER_CAPABILITIES.offers(ConstantVoltage(0.01, 60, 1, vs_ocv=True))
    assert not CYCLER_CAPABILITIES.offers(Impedance(1e6, 1, 0.01, 10))
    assert not CYCLER_CAPABILITIES.offers(VoltageSweep((1.0,), 1e-3, 1))
    assert CYCLER_CAPABILITIES.offers(ConstantCurrent(1.0, 60, 1))   # values are the plan's


def test_sim_serve_offers_the_served_drivers_of_each_kind():
    assert served_spec("cycler", "keithley2450").channels == "one"
    with pytest.raises(ValueError, match=r"^the cycler served is one of keithley2450,"
                                         r" neware\.bts, not 'espec'$"):
        served_spec("cycler", "espec")
    code, output = cli("sim", "serve", "--cycler", "sim.cycler")
    assert code == 2 and "--cycler: the cycler served is one of keithley2450, neware.bts" \
        in output


# -- an instrument added as its own module -------------------------------------------------

@pytest.fixture
def sketch(monkeypatch):
    """``tests/sketch_drivers/sketch_cycler.py`` as a module of the drivers package, as a new
    driver module would be."""
    monkeypatch.setattr(drivers, "__path__", [*drivers.__path__, str(SKETCH)])
    registry.forget()
    yield
    registry.forget()
    sys.modules.pop("drivers.sketch_cycler", None)


SKETCH_STATION = """\
    station: bench
    instruments:
      sk: {driver: sketch.cycler, channels: 2, options: OPTIONS}
    cells:
      c1: {instrument: sk, channel: 0}
    """


def test_without_its_module_the_sketch_instrument_is_unknown(tmp_path):
    code, output = cli("plan", *on_station(tmp_path, SKETCH_STATION.replace("OPTIONS", "{}")))
    assert code == 2 and "unknown driver 'sketch.cycler'" in output


def test_an_instrument_declared_only_in_its_module_is_validated_checked_and_run(sketch,
                                                                              tmp_path):
    assert registry.spec("sketch.cycler").kind == "cycler"
    # station validation: its options schema and channel rule
    code, output = cli("plan", *on_station(tmp_path, SKETCH_STATION.replace(
        "OPTIONS", "{max_current: 0.05}")))
    assert code == 2 and "st.yaml:3: instruments.sk.options: max_current: unknown option;" \
        " sketch.cycler takes: max_current_A" in output
    # pre-flight: its capabilities, from the options
    code, output = cli("plan", *on_station(tmp_path, SKETCH_STATION.replace("OPTIONS", "{}")))
    assert code == 2 and "protocol.yaml:10: experiments[0].steps[1]: cell c1: current 0.05 A" \
        " exceeds the channel's range of +-0.02 A" in output
    # a run on it, in virtual time, through its builder
    protocol, station = files(tmp_path, SKETCH_STATION.replace(
        "OPTIONS", "{max_current_A: 0.1}"))
    code, output = cli("run", protocol, "--station", station, "--out", str(tmp_path / "run"),
                       "--no-report")
    assert code == 0, output
    assert "c1   │ completed │ 2" in output
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    assert '"mode": "simulated"' in manifest and "sketch.cycler" in manifest


def test_an_instrument_name_declared_twice_is_refused(monkeypatch, tmp_path):
    (tmp_path / "second_espec.py").write_text(
        "from drivers.espec import INSTRUMENTS as _ESPEC\nINSTRUMENTS = _ESPEC\n")
    monkeypatch.setattr(drivers, "__path__", [*drivers.__path__, str(tmp_path)])
    registry.forget()
    try:
        with pytest.raises(registry.RegistryError, match=r"^instrument 'espec' is declared"
                                                         r" twice: in drivers\.espec and in"
                                                         r" drivers\.second_espec$"):
            registry.specs()
    finally:
        registry.forget()
        sys.modules.pop("drivers.second_espec", None)
