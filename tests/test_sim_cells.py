"""Simulated cell physics against closed forms and the paper's numbers (docs/physics.md)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from drivers.techniques import (
    ConstantCurrent,
    ConstantVoltage,
    Impedance,
    OpenCircuit,
    VoltageSweep,
)
from simulators.cells import (
    BlockingCell,
    FullCell,
    LiCuCell,
    SymmetricLiCell,
    build_cell,
)
from simulators.cells._common import K_B_EV, first_crossing
from simulators.cells.base import CellModel
from simulators.materials import UnknownMaterial, is_known, known_materials, load_material

THICKNESS_M = 300e-6
AREA_M2 = math.pi * 0.008**2              # 16 mm disc, 2.0106 cm^2
AREA_CM2 = AREA_M2 * 1e4
CATHODE_AREA_M2 = math.pi * 0.006**2      # 12 mm disc, 1.131 cm^2
ACTIVE_MASS_KG = 0.019 * CATHODE_AREA_M2  # 1.9 mg/cm^2
ACTIVE_MASS_G = ACTIVE_MASS_KG * 1e3
CAPACITY_AH = 0.200 * ACTIVE_MASS_G       # 1C = 200 mA/g
EIS = Impedance(f_start_Hz=3e6, f_end_Hz=0.1, amplitude_V=0.01, points_per_decade=10)


def full_cell(cathode: str = "NCM811", electrolyte: str = "AIOSE") -> FullCell:
    cell = build_cell("full_cell", electrolyte, THICKNESS_M, AREA_M2,
                      {"material": cathode, "active_mass_kg": ACTIVE_MASS_KG,
                       "capacity_Ah": CAPACITY_AH, "area_m2": CATHODE_AREA_M2})
    assert isinstance(cell, FullCell)
    return cell


def run(cell: CellModel, technique: object, temperature_C: float = 25.0,
        n: int = 20001) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Run a segment to its end: (t, V, I, end_reason), sampled densely, then commit it."""
    seg = cell.begin(technique, temperature_C)  # type: ignore[arg-type]
    t = np.linspace(0.0, seg.duration_s, n)
    v, i = seg.sample(t)
    seg.finish(seg.duration_s)
    return t, v, i, seg.end_reason


def hf_intercept(f: np.ndarray, z: np.ndarray) -> float:
    """Re Z where Im Z changes sign, from the high-frequency end; Re Z at f_max if it never does."""
    order = np.argsort(f)[::-1]
    zr, zi = z.real[order], z.imag[order]
    flips = np.nonzero(np.sign(zi[:-1]) != np.sign(zi[1:]))[0]
    if len(flips) == 0:
        return float(zr[0])
    k = flips[0]
    return float(np.interp(0.0, sorted([zi[k], zi[k + 1]]),
                           [zr[k], zr[k + 1]] if zi[k] < zi[k + 1] else [zr[k + 1], zr[k]]))


def charge_cc_cv(cell: FullCell, temperature_C: float = 25.0) -> None:
    run(cell, ConstantCurrent(0.1 * CAPACITY_AH, 100 * 3600, 30, until_voltage_V=4.35),
        temperature_C)
    *_, reason = run(cell, ConstantVoltage(4.35, 20 * 3600, 30, until_abs_current_A=CAPACITY_AH
                                           / 50), temperature_C)
    assert reason == "current"
    run(cell, OpenCircuit(600, 30), temperature_C)


def discharge_mAh_per_g(cell: FullCell, c_rate: float, temperature_C: float = 25.0) -> float:
    t, v, i, reason = run(cell, ConstantCurrent(-c_rate * CAPACITY_AH, 100 * 3600, 30,
                                                until_voltage_V=2.8), temperature_C)
    assert reason == "voltage"
    assert v[-1] == pytest.approx(2.8, abs=1e-6)
    q_integrated = -np.trapezoid(i, t) / 3.6 / ACTIVE_MASS_G
    assert q_integrated == pytest.approx(c_rate * CAPACITY_AH * t[-1] / 3.6 / ACTIVE_MASS_G,
                                         rel=1e-9)
    return q_integrated


# -- materials ----------------------------------------------------------------------------------

def test_material_files_cover_the_paper() -> None:
    electrolytes = set(known_materials("electrolyte"))
    assert {"AIOSE", "PEDL", "c-LLZTO", "LLZTO", "LiPF6-EC-DEC-EMC"} <= electrolytes
    assert {"NCM811", "NCM622", "LFP"} <= set(known_materials("cathode"))
    yamls = sorted(p.name for p in (Path(__file__).parents[1] / "materials" / "library")
                   .glob("*.yaml"))  # what pyproject's package data `library/*.yaml` ships
    assert len(yamls) == len(known_materials())


def test_material_lookup_is_case_and_punctuation_insensitive() -> None:
    assert load_material("aiose")["sigma_25C_S_per_cm"] == pytest.approx(0.58e-3)
    assert load_material("C-llzto")["name"] == "c-LLZTO"
    assert load_material("cLLZTO")["grain_boundary_fraction"] == 0.25
    assert load_material("llzto")["name"] == "LLZTO"
    assert load_material("1 M LiPF6 EC/DEC/EMC")["name"] == "LiPF6-EC-DEC-EMC"
    assert load_material("ncm811", "cathode")["v_max_V"] == 4.35
    assert is_known("Lfp") and not is_known("unobtainium")
    with pytest.raises(UnknownMaterial, match="is a cathode"):
        load_material("NCM811", "electrolyte")


def test_unknown_materials_are_refused_never_replaced() -> None:
    with pytest.raises(UnknownMaterial, match=r"MysteryGel.*to add a material"):
        load_material("MysteryGel")
    with pytest.raises(UnknownMaterial, match="closest known: NCM811"):
        load_material("NMC-8111", "cathode")
    with pytest.raises(UnknownMaterial):
        build_cell("blocking", "MysteryGel", THICKNESS_M, AREA_M2)
    # copies: changing one does not change the next
    e = load_material("AIOSE")
    e["sigma_25C_S_per_cm"] = 1.0
    assert load_material("AIOSE")["sigma_25C_S_per_cm"] == pytest.approx(0.58e-3)


def test_paper_values_in_the_files() -> None:
    a = load_material("AIOSE")
    assert (a["ea_eV"], a["transference_number"], a["ccd_mA_per_cm2"]) == (0.24, 0.66, 1.1)
    assert a["li_cu_coulombic_efficiency"] == 0.9631
    assert a["overpotential_mV"] == [34.7, 53.8, 67.1, 107.8]
    n = load_material("NCM811")
    assert n["fade_percent_per_cycle"] == 0.036
    assert n["msmr_U0_V"] == [3.62274, 3.72645, 3.90575, 4.22955]


# -- blocking cell ------------------------------------------------------------------------------

def test_blocking_intercept_is_bulk_resistance() -> None:
    cell = build_cell("blocking", "AIOSE", THICKNESS_M, AREA_M2)
    assert isinstance(cell, BlockingCell)
    expected = 0.03 / (0.58e-3 * AREA_CM2)
    assert expected == pytest.approx(25.72, abs=0.01)
    f = EIS.frequencies_Hz()
    assert hf_intercept(f, cell.impedance(f, 25.0)) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("material", ["AIOSE", "PEDL", "c-LLZTO", "LLZTO"])
def test_arrhenius(material: str) -> None:
    cell = build_cell("blocking", material, THICKNESS_M, AREA_M2)
    assert isinstance(cell, BlockingCell)
    ea = load_material(material)["ea_eV"]
    expected = math.exp(ea / K_B_EV * (1 / 333.15 - 1 / 298.15))
    ratio = cell.total_resistance_ohm(60.0) / cell.total_resistance_ohm(25.0)
    assert ratio == pytest.approx(expected, rel=1e-9)
    if material in ("AIOSE", "PEDL"):  # all bulk: the spectrum's intercept shows it too
        f = EIS.frequencies_Hz()
        measured = hf_intercept(f, cell.impedance(f, 60.0)) / hf_intercept(f, cell.impedance(
            f, 25.0))
        assert measured == pytest.approx(expected, rel=0.01)


def test_ceramic_has_a_grain_boundary_arc() -> None:
    cell = build_cell("blocking", "LLZTO", THICKNESS_M, AREA_M2)
    assert isinstance(cell, BlockingCell)
    assert cell.total_resistance_ohm(25.0) == pytest.approx(57.4, abs=0.1)
    assert cell.bulk_resistance_ohm(25.0) == pytest.approx(0.6 * 57.4, abs=0.1)
    f = np.logspace(6.5, 3, 141)
    z = cell.impedance(f, 25.0)
    valley = int(np.argmin(-z.imag))  # between the grain-boundary arc and the blocking spike
    assert 1e4 < f[valley] < 3e5
    assert z.real[valley] == pytest.approx(cell.total_resistance_ohm(25.0), rel=0.03)
    mi = -z.imag
    apexes = [f[k] for k in range(1, valley) if mi[k] > mi[k - 1] and mi[k] > mi[k + 1]]
    assert len(apexes) == 1 and 2e5 < apexes[0] < 2e6


def test_blocking_dc_charges_the_double_layer() -> None:
    cell = build_cell("blocking", "AIOSE", THICKNESS_M, AREA_M2)
    _, v, _, reason = run(cell, ConstantCurrent(1e-6, 60, 0.1, until_voltage_V=0.5))
    assert reason == "voltage" and v[-1] == pytest.approx(0.5, abs=1e-6)
    assert np.all(np.diff(v) > 0) and v[0] == pytest.approx(1e-6 * 25.72, rel=0.01)
    # a hold: the capacitive current dies away, leaving the electronic leakage V / R_e
    _, v, i, reason = run(cell, ConstantVoltage(0.5, 60, 0.1))
    assert i[-1] == pytest.approx(0.5 / (cell.r_electronic_ohm + 25.72), rel=1e-3)
    _, v, i, reason = run(cell, ConstantVoltage(1.0, 60, 0.1, until_abs_current_A=1e-7))
    assert reason == "current" and abs(i[-1]) <= 1e-7 * (1 + 1e-9)
    assert cell.ocv_V(25.0) == pytest.approx(1.0, abs=0.01)


# -- Li | AIOSE | Li ----------------------------------------------------------------------------

def test_bruce_vincent_gives_the_transference_number_back() -> None:
    cell = build_cell("symmetric_li", "AIOSE", THICKNESS_M, AREA_M2)
    assert isinstance(cell, SymmetricLiCell)
    dv = 0.010
    r_b = cell.bulk_resistance_ohm(25.0)
    r_0 = cell.interfacial_resistance_ohm(25.0)
    assert (r_b, r_0) == (pytest.approx(25.72, abs=0.01), pytest.approx(134.5, abs=0.01))
    tau = cell.polarisation_time_constant_s(25.0)
    assert tau == pytest.approx(0.03**2 / (math.pi**2 * 1e-7))  # ~912 s
    seg = cell.begin(ConstantVoltage(dv, 15 * tau, 10.0), 25.0)
    _, (i_0, i_s) = seg.sample(np.array([0.0, seg.duration_s]))
    seg.finish(seg.duration_s)
    r_s = cell.interfacial_resistance_ohm(25.0)
    assert r_s == pytest.approx(140.0, abs=1.0)
    assert i_0 == pytest.approx(dv / (r_b + r_0), rel=1e-9)              # 62.4 uA
    assert i_s == pytest.approx(0.66 * dv / (r_b + 0.66 * r_s), rel=1e-5)  # ~55.8 uA
    t_plus = i_s * (dv - i_0 * r_0) / (i_0 * (dv - i_s * r_s))
    assert t_plus == pytest.approx(0.66, abs=0.01)


def test_interfacial_resistance_grows_with_rest() -> None:
    cell = build_cell("symmetric_li", "AIOSE", THICKNESS_M, AREA_M2)
    assert isinstance(cell, SymmetricLiCell)
    for _ in range(20):
        run(cell, OpenCircuit(86400.0, 3600.0), n=25)
    assert cell.interfacial_resistance_ohm(25.0) == pytest.approx(155.1, abs=0.2)
    f = np.logspace(6, -1, 71)
    z = cell.impedance(f, 25.0)
    # the interfacial arc closes at R_b + R_int before the (slow) Warburg starts
    k = int(np.argmin(np.abs(f - 1.0)))
    assert z.real[k] == pytest.approx(25.72 + 155.1, rel=0.02)


@pytest.mark.parametrize(("j", "eta_mV"), [(0.15, 34.7), (0.35, 53.8), (0.45, 67.1),
                                           (0.65, 107.8)])
def test_plating_stripping_overpotential(j: float, eta_mV: float) -> None:
    cell = build_cell("symmetric_li", "AIOSE", THICKNESS_M, AREA_M2)
    current = j * 1e-3 * AREA_CM2
    _, v_up, _, _ = run(cell, ConstantCurrent(current, 1800, 1.0))
    _, v_down, _, _ = run(cell, ConstantCurrent(-current, 1800, 1.0))
    assert v_up[-1] * 1e3 == pytest.approx(eta_mV, abs=0.5)
    assert v_down[-1] * 1e3 == pytest.approx(-eta_mV, abs=0.5)
    assert np.all(v_up > 0) and np.all(v_down < 0)
    assert v_up[0] < v_up[-1]  # the rise transient, from the ohmic drop


def test_short_once_current_density_reaches_ccd() -> None:
    cell = build_cell("symmetric_li", "AIOSE", THICKNESS_M, AREA_M2)
    assert isinstance(cell, SymmetricLiCell)
    for j in (0.8, 0.9, 1.0):
        i = j * 1e-3 * AREA_CM2
        _, v, _, _ = run(cell, ConstantCurrent(i, 1800, 1.0))
        run(cell, ConstantCurrent(-i, 1800, 1.0))
        assert not cell.shorted and v[-1] > 0.1
    i = 1.1e-3 * AREA_CM2
    _, v, _, _ = run(cell, ConstantCurrent(i, 1800, 1.0))
    assert cell.shorted
    assert v[-1] == pytest.approx(i * 2.0, rel=1e-6)  # |V| = j A R_short
    assert v.max() > 0.15                             # it collapsed from the plating value
    # stays shorted, even at a small current
    _, v, _, _ = run(cell, ConstantCurrent(-0.1e-3 * AREA_CM2, 600, 1.0))
    assert np.allclose(v, -0.1e-3 * AREA_CM2 * 2.0)
    assert abs(cell.impedance(np.array([1e3]), 25.0)[0]) < 2.0


def test_liquid_reference_shorts_within_500_cycles_aiose_does_not() -> None:
    for name, shorts in (("LiPF6-EC-DEC-EMC", True), ("AIOSE", False)):
        cell = build_cell("symmetric_li", name, THICKNESS_M, AREA_M2)
        assert isinstance(cell, SymmetricLiCell)
        i = 0.35e-3 * AREA_CM2
        for _ in range(500):
            run(cell, ConstantCurrent(i, 1800, 60.0), n=3)
            _, v, _, _ = run(cell, ConstantCurrent(-i, 1800, 60.0), n=3)
        assert cell.shorted is shorts
        if not shorts:  # 500 h at 0.35 mA/cm^2: stable, only a slow drift
            assert -v[-1] * 1e3 == pytest.approx(53.8, rel=0.03)


# -- Li | AIOSE | Cu ----------------------------------------------------------------------------

def test_li_cu_coulombic_efficiency_and_sign_convention() -> None:
    cell = build_cell("li_cu", "AIOSE", THICKNESS_M, AREA_M2)
    assert isinstance(cell, LiCuCell)
    assert cell.ocv_V(25.0) == pytest.approx(3.0)  # bare Cu
    i = 0.5e-3 * AREA_CM2
    plated = stripped = 0.0
    for _ in range(10):
        t, v, cur, _ = run(cell, ConstantCurrent(-i, 3600, 10.0))
        assert v[-1] < 0 and np.all(cur < 0)  # plating onto Cu: negative current, V < 0
        plated += -np.trapezoid(cur, t)
        t, v, cur, reason = run(cell, ConstantCurrent(i, 7200, 10.0, until_voltage_V=0.5))
        assert reason == "voltage" and v[-1] == pytest.approx(0.5, abs=1e-6)
        assert 0 < v[len(v) // 2] < 0.1  # stripping plateau at +eta
        stripped += np.trapezoid(cur, t)
    assert stripped / plated == pytest.approx(0.9631, abs=0.001)
    assert not cell.has_lithium


# -- NCM811 | AIOSE | Li ------------------------------------------------------------------------

def test_full_cell_starts_discharged_at_its_pristine_rest_voltage() -> None:
    cell = full_cell()
    assert cell.ocv_V(25.0) == pytest.approx(3.3, abs=1e-3)  # above its 2.8 V cutoff
    assert cell.state_of_charge == pytest.approx(0.0, abs=1e-3)


def test_msmr_ocv_inverts() -> None:
    cell = full_cell()
    u = np.linspace(2.9, 4.4, 61)
    y = cell.delithiation(u, 25.0)
    assert np.all(np.diff(y) > 0)
    assert np.allclose(cell.open_circuit_voltage(y, 25.0), u, atol=1e-3)


def test_full_cell_0p1c_discharge_capacity() -> None:
    cell = full_cell()
    charge_cc_cv(cell)
    q = discharge_mAh_per_g(cell, 0.1)
    assert q == pytest.approx(207.1, rel=0.03)


@pytest.mark.parametrize(("temperature_C", "c_rate", "paper_mAh_per_g"), [
    (25.0, 1.0, 190.5), (25.0, 5.0, 141.1), (25.0, 10.0, 105.5),
    (60.0, 2.0, 204.4), (60.0, 20.0, 119.7),
    (-10.0, 0.1, 148.1), (-20.0, 0.1, 128.7),
])
def test_full_cell_rate_and_temperature(temperature_C: float, c_rate: float,
                                        paper_mAh_per_g: float) -> None:
    cell = full_cell()
    charge_cc_cv(cell, temperature_C)
    q = discharge_mAh_per_g(cell, c_rate, temperature_C)
    assert q == pytest.approx(paper_mAh_per_g, rel=0.03)


def test_full_cell_cv_decays_and_voltage_shape() -> None:
    cell = full_cell()
    _, v, _, reason = run(cell, ConstantCurrent(0.1 * CAPACITY_AH, 100 * 3600, 30,
                                                until_voltage_V=4.35))
    assert reason == "voltage" and v[-1] == pytest.approx(4.35, abs=1e-6)
    assert np.all(np.diff(v) >= -1e-9)  # charging from rest: monotone
    _, v, i, reason = run(cell, ConstantVoltage(4.35, 20 * 3600, 30,
                                                until_abs_current_A=CAPACITY_AH / 50))
    assert i[0] == pytest.approx(0.1 * CAPACITY_AH, rel=1e-3)  # continues the CC current
    assert np.all(np.diff(i) < 0) and np.all(v == 4.35)
    # the OCV relaxes near the top after the hold
    _, v, _, _ = run(cell, OpenCircuit(3600, 60))
    assert 4.3 < v[-1] <= 4.35


def test_full_cell_fades_per_cycle() -> None:
    cell = full_cell()
    first = last = 0.0
    for k in range(30):
        run(cell, ConstantCurrent(1.0 * CAPACITY_AH, 10 * 3600, 60, until_voltage_V=4.35), n=3)
        run(cell, ConstantVoltage(4.35, 10 * 3600, 60, until_abs_current_A=CAPACITY_AH / 20),
            n=3)
        q = discharge_mAh_per_g(cell, 1.0)
        first = q if k == 1 else first
        last = q
    per_cycle = (1 - last / first) / 28
    assert per_cycle == pytest.approx(0.036e-2, rel=0.35)
    assert cell.equivalent_full_cycles == pytest.approx(30, rel=0.05)



def _fade_over_cycles(temperature_C: float, cycles: int = 12) -> float:
    """Capacity lost per equivalent full cycle over ``cycles`` 0.1C cycles at ``temperature_C``."""
    cell = full_cell()
    for _ in range(cycles):
        run(cell, ConstantCurrent(0.1 * CAPACITY_AH, 100 * 3600, 60, until_voltage_V=4.35),
            temperature_C, n=3)
        run(cell, ConstantVoltage(4.35, 10 * 3600, 60, until_abs_current_A=CAPACITY_AH / 50),
            temperature_C, n=3)
        run(cell, ConstantCurrent(-0.1 * CAPACITY_AH, 100 * 3600, 60, until_voltage_V=2.8),
            temperature_C, n=3)
    assert cell.equivalent_full_cycles > 0.5 * cycles
    return (1 - cell.retention) / cell.equivalent_full_cycles


def test_full_cell_ages_faster_away_from_25_degC() -> None:
    """Two Arrhenius branches meet at 25 degC: heat and cold both cost more per cycle, by the
    factors the material's activation energies give."""
    params = load_material("NCM811")
    at25, at60, at_m20 = (_fade_over_cycles(t) for t in (25.0, 60.0, -20.0))
    assert at25 == pytest.approx(0.036e-2, rel=1e-6)
    hot = math.exp(-params["fade_ea_above_25C_eV"] / K_B_EV * (1 / 333.15 - 1 / 298.15))
    cold = math.exp(params["fade_ea_below_25C_eV"] / K_B_EV * (1 / 253.15 - 1 / 298.15))
    assert hot > 1.1 and cold > 1.5
    assert at60 == pytest.approx(0.036e-2 * hot, rel=1e-6)
    assert at_m20 == pytest.approx(0.036e-2 * cold, rel=1e-6)


def test_full_cell_snapshot_keeps_its_ageing() -> None:
    aged = full_cell()
    for _ in range(3):
        charge_cc_cv(aged, 60.0)
        run(aged, ConstantCurrent(-CAPACITY_AH, 10 * 3600, 60, until_voltage_V=2.8), 60.0, n=3)
    charge_cc_cv(aged, 60.0)
    fresh = full_cell()
    fresh.restore(aged.state())
    assert fresh.retention == aged.retention < 1.0
    assert discharge_mAh_per_g(fresh, 1.0) == discharge_mAh_per_g(aged, 1.0)


# -- all cells ----------------------------------------------------------------------------------

def _script(cell: CellModel) -> list[np.ndarray]:
    out = []
    for tech in (OpenCircuit(60, 1), ConstantCurrent(1e-4, 3600, 7, until_voltage_V=4.35),
                 ConstantVoltage(0.01, 600, 5), ConstantCurrent(-1e-4, 3600, 7,
                                                                 until_voltage_V=-0.5)):
        seg = cell.begin(tech, 25.0)
        t = np.arange(0, seg.duration_s, 7.0)
        out.extend(seg.sample(t))
        seg.finish(seg.duration_s)
    out.append(cell.impedance(EIS.frequencies_Hz(), 25.0))
    return out


@pytest.mark.parametrize("kind", ["blocking", "symmetric_li", "li_cu", "full_cell"])
def test_deterministic_and_vectorised(kind: str) -> None:
    def make() -> CellModel:
        return full_cell() if kind == "full_cell" else build_cell(kind, "AIOSE", THICKNESS_M,
                                                                  AREA_M2)

    a, b = _script(make()), _script(make())
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    seg = make().begin(ConstantCurrent(-1e-4, 100, 1), 25.0)
    t = np.linspace(0, 100, 12).reshape(3, 4)
    v, i = seg.sample(t)
    assert v.shape == i.shape == (3, 4)
    seg.finish(50.0)
    with pytest.raises(RuntimeError):
        seg.finish(50.0)


def test_build_cell_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown cell kind"):
        build_cell("pouch", "AIOSE", THICKNESS_M, AREA_M2)
    with pytest.raises(ValueError, match="needs a cathode"):
        build_cell("full_cell", "AIOSE", THICKNESS_M, AREA_M2)
    with pytest.raises(ValueError):
        build_cell("blocking", "AIOSE", THICKNESS_M, AREA_M2).begin(
            OpenCircuit(math.inf, 1), 25.0)
    # what a cell cannot run: NotImplementedError, which the simulated channel reports
    for kind in ("blocking", "symmetric_li", "li_cu"):
        with pytest.raises(NotImplementedError):
            build_cell(kind, "AIOSE", THICKNESS_M, AREA_M2).begin(EIS, 25.0)  # type: ignore


def test_first_crossing_finds_the_first_of_several() -> None:
    t_hit = first_crossing(lambda t: np.sin(t), 20.0, 0.5, rising=True)
    assert t_hit == pytest.approx(math.pi / 6, abs=1e-8)
    t_hit = first_crossing(lambda t: np.sin(t), 20.0, -0.5, rising=False)
    assert t_hit == pytest.approx(math.pi + math.pi / 6, abs=1e-8)
    assert first_crossing(lambda t: np.sin(t), 20.0, 2.0, rising=True) is None


# -- voltage sweeps (LSV, CV) ---------------------------------------------------------------------

ONSET_J_A_PER_CM2 = 10e-6   # the LSV onset criterion, 10 uA/cm^2


def make_cell(kind: str, electrolyte: str = "AIOSE") -> CellModel:
    if kind == "full_cell":
        return full_cell(electrolyte=electrolyte)
    return build_cell(kind, electrolyte, THICKNESS_M, AREA_M2)


def onset_V(v: np.ndarray, i: np.ndarray, threshold_A: float) -> float:
    """What an analysis does with a raw LSV: V where |I| first crosses the threshold."""
    k = int(np.argmax(np.abs(i) >= threshold_A))
    assert k > 0 and abs(i[k]) >= threshold_A
    return float(np.interp(threshold_A, [abs(i[k - 1]), abs(i[k])], [v[k - 1], v[k]]))


def test_lsv_on_li_ss_stops_at_the_oxidation_onset() -> None:
    cell = build_cell("li_cu", "AIOSE", THICKNESS_M, AREA_M2)
    assert isinstance(cell, LiCuCell)
    threshold = ONSET_J_A_PER_CM2 * AREA_CM2
    seg = cell.begin(VoltageSweep((6.0,), 1e-3, 1.0, until_abs_current_A=threshold), 25.0)
    assert seg.end_reason == "current"
    (v_end,), (i_end,) = seg.sample(np.array([seg.duration_s]))
    assert v_end == pytest.approx(5.6, abs=0.05)
    assert abs(i_end) >= threshold * (1 - 1e-9) and abs(i_end) == pytest.approx(threshold,
                                                                              rel=1e-6)
    assert seg.duration_s == pytest.approx((v_end - 3.0) / 1e-3, rel=1e-9)  # from OCV, 3.0 V
    _, i_before = seg.sample(np.linspace(0.0, seg.duration_s, 1001)[:-1])
    assert np.all(np.abs(i_before) < threshold)
    seg.finish(seg.duration_s)
    # an anodic sweep on bare Cu/SS moves no Li
    assert (cell.li_on_cu_C, cell.plated_C, cell.stripped_C) == (0.0, 0.0, 0.0)
    assert cell.ocv_V(25.0) == pytest.approx(3.0)


def test_lsv_raw_current_at_the_onset() -> None:
    cell = build_cell("li_cu", "AIOSE", THICKNESS_M, AREA_M2)
    threshold = ONSET_J_A_PER_CM2 * AREA_CM2
    seg = cell.begin(VoltageSweep((6.0,), 1e-3, 1.0), 25.0)
    assert seg.end_reason == "completed" and seg.duration_s == pytest.approx(3000.0)
    t = np.arange(0.0, seg.duration_s + 0.5, 1.0)   # as recorded, every second
    v, i = seg.sample(t)
    assert np.all(np.diff(v) > 0) and v[0] == pytest.approx(3.0) and v[-1] == pytest.approx(6.0)
    k = int(np.argmin(np.abs(v - 5.6)))
    assert v[k] == pytest.approx(5.6, abs=1e-9)
    assert i[k] == pytest.approx(threshold, rel=0.05)
    assert onset_V(v, i, threshold) == pytest.approx(5.6, abs=0.05)
    above = v > 4.5
    assert np.all(np.diff(i[above]) > 0)             # the decomposition current only grows
    assert np.all(np.abs(i[v < 4.0]) < 0.01 * threshold)  # a flat baseline, capacitive only
    # the liquid reference gives way much earlier
    seg = build_cell("li_cu", "liquid reference", THICKNESS_M, AREA_M2).begin(
        VoltageSweep((6.0,), 1e-3, 1.0), 25.0)
    v, i = seg.sample(t)
    assert onset_V(v, i, threshold) == pytest.approx(4.5, abs=0.05)


def test_lsv_onset_moves_down_when_hot() -> None:
    threshold = ONSET_J_A_PER_CM2 * AREA_CM2
    onsets = []
    for temperature in (25.0, 60.0):
        seg = make_cell("li_cu").begin(VoltageSweep((6.0,), 1e-3, 1.0,
                                                    until_abs_current_A=threshold), temperature)
        onsets.append(float(seg.sample(np.array([seg.duration_s]))[0][0]))
    assert 0.1 < onsets[0] - onsets[1] < 0.4


@pytest.mark.parametrize(("kind", "vertices", "rate", "q_dl", "r_series"), [
    ("li_cu", (3.5, 2.5), 10e-3, 5e-6, 25.72 + 134.5 / 2),   # R_b + one Li interface
    ("blocking", (0.2, -0.2), 0.1, 5e-6, 25.72),
])
def test_cv_capacitive_current_flips_at_each_reversal(kind: str, vertices: tuple[float, ...],
                                                      rate: float, q_dl: float,
                                                      r_series: float) -> None:
    cell = make_cell(kind)
    seg = cell.begin(VoltageSweep(vertices, rate, 0.1, cycles=2), 25.0)
    start = float(seg.sample(np.zeros(1))[0][0])
    assert start == pytest.approx(cell.ocv_V(25.0))
    path = [start, *vertices, *vertices]
    corners = np.cumsum(np.abs(np.diff(path))) / rate
    assert seg.duration_s == pytest.approx(corners[-1], rel=1e-9)
    c_dl = q_dl ** (1 / 0.85) * r_series ** (0.15 / 0.85)  # Brug's C of the double-layer CPE
    dt = 0.05 * (vertices[0] - vertices[1]) / rate            # long after the R C transient
    for t_corner, v_corner in zip(corners[:-1], path[1:-1], strict=True):
        (v_b, v_c, v_a), (i_b, _, i_a) = seg.sample(np.array([t_corner - dt, t_corner,
                                                              t_corner + dt]))
        assert v_c == pytest.approx(v_corner, abs=1e-9) and v_a == pytest.approx(v_b, abs=1e-9)
        direction = 1.0 if v_c > v_b else -1.0
        assert np.sign(i_b) == direction and np.sign(i_a) == -direction
        assert (i_b - i_a) / 2 == pytest.approx(direction * c_dl * rate, rel=0.02)
    _, i = seg.sample(np.linspace(0.0, seg.duration_s, 4001))
    assert np.max(np.abs(i)) < 1.5 * c_dl * rate  # nothing faradaic in this range


def test_cv_duration_is_path_length_over_scan_rate() -> None:
    cell = make_cell("li_cu")
    sweep = VoltageSweep((4.5, 2.5, 3.0), 10e-3, 1.0, cycles=3)
    seg = cell.begin(sweep, 25.0)
    # 3.0 -> 4.5 -> 2.5 -> 3.0, then twice more 4.5 -> 2.5 -> 3.0 (from 3.0): 3 x 4 V
    assert seg.end_reason == "completed"
    assert seg.duration_s == pytest.approx(12.0 / 10e-3, rel=1e-12)
    corners = np.array([150, 350, 400, 550, 750, 800, 950, 1150, 1200], dtype=float)
    v, _ = seg.sample(corners)
    assert np.allclose(v, [4.5, 2.5, 3.0] * 3, atol=1e-9)
    lsv = make_cell("li_cu").begin(VoltageSweep((4.0,), 5e-3, 1.0, start_V=3.5), 25.0)
    assert lsv.duration_s == pytest.approx(100.0) and lsv.sample(np.zeros(1))[0][0] == 3.5


def test_li_cu_cv_plates_and_strips_with_the_cells_efficiency() -> None:
    cell = build_cell("li_cu", "AIOSE", THICKNESS_M, AREA_M2)
    assert isinstance(cell, LiCuCell)
    t, v, i, reason = run(cell, VoltageSweep((-0.3, 2.0), 5e-3, 1.0, cycles=2), n=200001)
    assert reason == "completed"
    assert np.all(i[v < -1e-3] < 0)                              # plating below 0 V
    plated = -np.trapezoid(np.minimum(i, 0.0), t)
    stripped = np.trapezoid(np.maximum(i, 0.0), t)
    assert cell.plated_C == pytest.approx(plated, rel=1e-3)
    assert cell.stripped_C == pytest.approx(stripped, rel=1e-3)
    assert cell.stripped_C / cell.plated_C == pytest.approx(0.9631, abs=1e-4)
    assert not cell.has_lithium and cell.ocv_V(25.0) == pytest.approx(3.0)
    # Li left on the Cu is stripped by an anodic sweep, and only that much
    run(cell, ConstantCurrent(-0.5e-3 * AREA_CM2, 600, 10.0))
    li = cell.li_on_cu_C
    t, v, i, _ = run(cell, VoltageSweep((1.0,), 1e-3, 1.0))
    assert v[0] == 0.0 and not cell.has_lithium
    assert np.trapezoid(i, t) == pytest.approx(li, rel=1e-3)


def test_symmetric_sweep_follows_the_plating_curve() -> None:
    cell = build_cell("symmetric_li", "AIOSE", THICKNESS_M, AREA_M2)
    assert isinstance(cell, SymmetricLiCell)
    seg = cell.begin(VoltageSweep((0.1, -0.1), 1e-4, 10.0), 25.0)
    t_up = np.array([34.7, 53.8, 67.1]) * 1e-3 / 1e-4     # where V is the measured overpotentials
    t_down = 1000 + (0.1 + np.array([34.7, 53.8, 67.1]) * 1e-3) / 1e-4
    v, i = seg.sample(np.concatenate((t_up, t_down)))
    j = i / AREA_CM2 * 1e3
    assert np.allclose(j[:3], [0.15, 0.35, 0.45], rtol=2e-3)   # + tiny C dV/dt
    assert np.allclose(v[3:], [-0.0347, -0.0538, -0.0671], atol=1e-9)
    assert np.allclose(j[3:], [-0.15, -0.35, -0.45], rtol=2e-3)
    seg.finish(seg.duration_s)
    assert not cell.shorted and cell.age_s == pytest.approx(seg.duration_s)
    # sweeping past the CCD shorts the cell
    run(cell, VoltageSweep((0.4,), 1e-3, 1.0))
    assert cell.shorted


def test_blocking_sweep_commits_the_double_layer() -> None:
    cell = build_cell("blocking", "AIOSE", THICKNESS_M, AREA_M2)
    assert isinstance(cell, BlockingCell)
    _, v, i, reason = run(cell, VoltageSweep((0.5,), 10e-3, 0.1))
    assert reason == "completed"
    c = cell._c_eff_F(25.0)
    leak = v / (cell.r_electronic_ohm + 25.72)
    assert np.allclose(i[100:], c * 10e-3 + leak[100:], rtol=1e-3)
    assert cell.ocv_V(25.0) == pytest.approx(0.5, abs=1e-3)


def test_full_cell_sweep_moves_the_state_of_charge() -> None:
    cell = full_cell()
    t, v, i, reason = run(cell, VoltageSweep((4.35,), 0.1e-3, 10.0), n=50001)
    assert reason == "completed" and cell.state_of_charge > 0.8
    charge = np.trapezoid(i, t)
    assert cell.charged_C == pytest.approx(charge, rel=1e-3)
    q_mAh_per_g = charge / 3.6 / ACTIVE_MASS_G
    assert 180 < q_mAh_per_g < 240                        # most of the window at 0.1 mV/s
    peak = float(v[np.argmax(i)])
    assert 3.7 < peak < 3.95                              # the MSMR's main stage, shifted by I R
    assert cell.ocv_V(25.0) == pytest.approx(4.35, abs=0.05)
    # and back: a discharge of about the same charge, a reduction peak below the oxidation peak
    t, v, i, _ = run(cell, VoltageSweep((2.8,), 0.1e-3, 10.0), n=50001)
    assert cell.discharged_C == pytest.approx(-np.trapezoid(i, t), rel=1e-3)
    assert float(v[np.argmin(i)]) < peak
    assert cell.state_of_charge == pytest.approx(0.0, abs=0.05)


def test_full_cell_sweep_stopped_early_commits_what_passed() -> None:
    cell = full_cell()
    seg = cell.begin(VoltageSweep((4.35, 3.6), 0.5e-3, 1.0), 25.0)
    t = np.linspace(0.0, 0.7 * seg.duration_s, 20001)
    _, i = seg.sample(t)
    seg.finish(t[-1])
    y_lo = cell.delithiation(3.3, 25.0)  # the pristine state
    q = np.trapezoid(i, t)
    assert cell.charged_C - cell.discharged_C == pytest.approx(q, rel=2e-3)
    assert cell.y_bulk == pytest.approx(y_lo + (0.9965 * cell.charged_C - cell.discharged_C)
                                        / cell._q_per_y_C(), rel=1e-4)  # fade moves q/y


def test_full_cell_oxidation_beyond_the_window() -> None:
    currents = {}
    for electrolyte in ("AIOSE", "liquid reference"):
        cell = full_cell(electrolyte=electrolyte)
        run(cell, ConstantVoltage(4.35, 1e6, 100.0, until_abs_current_A=1e-7), n=11)
        seg = cell.begin(VoltageSweep((5.2,), 1e-3, 1.0), 25.0)
        _, i = seg.sample(np.array([seg.duration_s]))
        currents[electrolyte] = float(i[0])
        seg.finish(seg.duration_s)
    cathode_area_cm2 = CATHODE_AREA_M2 * 1e4
    # AIOSE: nothing much by 5.2 V; the liquid is well past its 4.5 V onset
    assert currents["AIOSE"] < 2 * ONSET_J_A_PER_CM2 * cathode_area_cm2
    assert currents["liquid reference"] > 100 * ONSET_J_A_PER_CM2 * cathode_area_cm2


@pytest.mark.parametrize("kind", ["blocking", "symmetric_li", "li_cu", "full_cell"])
def test_sweeps_are_deterministic_and_vectorised(kind: str, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    vertices = {"blocking": (0.3, -0.3), "symmetric_li": (0.05, -0.05), "li_cu": (5.8, 2.0),
                "full_cell": (4.3, 3.5)}[kind]
    sweep = VoltageSweep(vertices, 2e-3, 1.0, cycles=2)

    def script() -> list[np.ndarray]:
        cell = make_cell(kind)
        seg = cell.begin(sweep, 25.0)
        out = list(seg.sample(np.arange(0.0, seg.duration_s, 3.0)))
        seg.finish(seg.duration_s)
        seg = cell.begin(OpenCircuit(60, 1), 25.0)
        out.extend(seg.sample(np.arange(0.0, 60.0, 1.0)))
        return out

    for x, y in zip(script(), script(), strict=True):
        assert np.array_equal(x, y)

    seg = make_cell(kind).begin(sweep, 25.0)
    t = np.linspace(0.0, seg.duration_s, 12).reshape(3, 4)
    v, i = seg.sample(t)
    assert v.shape == i.shape == (3, 4)
    # no Python loop per point: the numpy calls a sample makes do not grow with its size
    calls = {"n": 0}
    for name in ("interp", "searchsorted"):
        original = getattr(np, name)

        def counted(*args: object, _f: object = original, **kwargs: object) -> object:
            calls["n"] += 1
            return _f(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(np, name, counted)
    counts = []
    for n in (10, 100_000):
        calls["n"] = 0
        v, i = seg.sample(np.linspace(0.0, seg.duration_s, n))
        assert v.shape == i.shape == (n,) and np.all(np.isfinite(i))
        counts.append(calls["n"])
    assert counts[0] == counts[1] > 0


def test_full_cell_discharge_after_a_charge_at_its_rate_is_that_of_a_fresh_model() -> None:
    """A cycle's charge and discharge at one rate share the discharge offset the model keeps
    between them: the discharge is bit for bit that of a model given the same state afresh."""
    cell = full_cell()
    seg = cell.begin(ConstantCurrent(CAPACITY_AH, 3 * 3600, 60, until_voltage_V=4.35), 25.0)
    seg.finish(seg.duration_s)
    fresh = full_cell()
    fresh.restore(cell.state())
    discharge = ConstantCurrent(-CAPACITY_AH, 3 * 3600, 60, until_voltage_V=2.8)
    kept, anew = cell.begin(discharge, 25.0), fresh.begin(discharge, 25.0)
    assert abs(-CAPACITY_AH) in cell._reference_cache[2]   # the kept offset was taken up
    assert kept.duration_s == anew.duration_s and kept.end_reason == anew.end_reason == "voltage"
    t = np.linspace(0.0, kept.duration_s, 101)
    for ours, theirs in zip(kept.sample(t), anew.sample(t), strict=True):
        assert ours.tobytes() == theirs.tobytes()
