"""Plausibility of the simulated lab for the library's chemistries: windows and trends, not tuned
single numbers. And the two-electrode model against PyBaMM's DFN curves the fidelity benchmark
stored (CI has no PyBaMM)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit
from simulators.cells import build_cell
from simulators.cells.published_cell import published_cell

from .conftest import ROOT

CATHODE_AREA_M2 = math.pi * 0.006**2     # 12 mm disc
MEMBRANE_AREA_M2 = math.pi * 0.008**2    # 16 mm separator
MASS_KG = 10e-6 * CATHODE_AREA_M2 * 1e4  # 10 mg/cm^2


def coin(cathode: str, anode: str, electrolyte: str = "LiPF6-EC-EMC", mah_per_g: float = 170.0):
    return build_cell("full_cell", electrolyte, 25e-6, MEMBRANE_AREA_M2,
                      {"material": cathode, "active_mass_kg": MASS_KG,
                       "capacity_Ah": MASS_KG * mah_per_g, "area_m2": CATHODE_AREA_M2},
                      anode=anode)


def run(cell, technique, temperature_C=25.0):
    seg = cell.begin(technique, temperature_C)
    seg.finish(seg.duration_s)
    return seg


def cycle(cell, one_c_A, v_min, v_max, rate=0.1, temperature_C=25.0):
    """CC-CV charge at C/10 (to C/50), rest, CC discharge at ``rate``: (charge, discharge) in
    mAh/g and the discharge's mid voltage."""
    q0, d0 = cell.charged_C, cell.discharged_C
    run(cell, ConstantCurrent(0.1 * one_c_A, 4e5, 10.0, until_voltage_V=v_max), temperature_C)
    run(cell, ConstantVoltage(v_max, 4e4, 10.0, until_abs_current_A=0.02 * one_c_A),
        temperature_C)
    run(cell, OpenCircuit(1800.0, 60.0), temperature_C)
    seg = cell.begin(ConstantCurrent(-rate * one_c_A, 4e5 / rate, 10.0, until_voltage_V=v_min),
                     temperature_C)
    v_mid = float(seg.sample(np.array([seg.duration_s / 2]))[0][0])
    seg.finish(seg.duration_s)
    run(cell, OpenCircuit(1800.0, 60.0), temperature_C)
    to_mah_g = 1 / 3.6 / (MASS_KG * 1e3)
    return (cell.charged_C - q0) * to_mah_g, (cell.discharged_C - d0) * to_mah_g, v_mid


# (cathode, anode, electrolyte, v_min, v_max, discharge capacity window mAh/g, mid-voltage window)
CHEMISTRIES = [
    ("LFP", "graphite", "LiPF6-EC-EMC", 2.5, 3.65, (120, 170), (3.1, 3.4)),
    ("NMC622", "graphite", "1 M LiPF6 in EC:EMC 3:7 + 2 wt% VC", 2.8, 4.2, (140, 200), (3.5, 3.9)),
    ("NMC811", "graphite", "LiPF6-EC-DMC", 2.8, 4.2, (150, 215), (3.5, 3.9)),
    ("NMC811", "Si-graphite", "LiPF6-EC-EMC+FEC", 2.8, 4.2, (140, 215), (3.4, 3.9)),
    ("NCA", "graphite", "LiPF6-EC-DEC", 2.8, 4.2, (140, 215), (3.4, 3.9)),
    ("LCO", "graphite", "LiPF6-EC-DEC", 3.0, 4.2, (120, 175), (3.6, 4.0)),
    ("LCO", "LTO", "LiPF6-EC-DMC", 1.5, 2.8, (120, 175), (2.1, 2.6)),
    ("NMC622", "Li", "LiPF6-EC-EMC", 3.0, 4.3, (160, 215), (3.6, 4.0)),
    ("LMO", "Li", "LiPF6-EC-EMC", 3.5, 4.3, (80, 150), (3.9, 4.2)),
    ("LNMO", "Li", "LiPF6-EC-EMC", 3.5, 4.9, (100, 150), (4.5, 4.8)),
]


@pytest.mark.parametrize(("cathode", "anode", "electrolyte", "v_min", "v_max", "q_win", "v_win"),
                         CHEMISTRIES)
def test_capacity_and_voltage_windows_and_capacity_falling_with_rate(
        cathode, anode, electrolyte, v_min, v_max, q_win, v_win):
    cell = coin(cathode, anode, electrolyte)
    one_c = MASS_KG * 170.0
    cycle(cell, one_c, v_min, v_max)  # formation
    _, q_slow, v_mid = cycle(cell, one_c, v_min, v_max, rate=0.1)
    assert q_win[0] < q_slow < q_win[1]
    assert v_win[0] < v_mid < v_win[1]
    _, q_1c, _ = cycle(cell, one_c, v_min, v_max, rate=1.0)
    _, q_5c, _ = cycle(cell, one_c, v_min, v_max, rate=5.0)
    assert q_slow > q_1c > q_5c > 0.3 * q_slow  # a liquid coin cell keeps a fair share at 5C


@pytest.mark.parametrize(("anode", "ce_window"), [("graphite", (80, 93)),
                                                  ("Si-graphite", (75, 90)), ("LTO", (97, 100.5))])
def test_first_cycle_loss_with_graphite_then_high_efficiency(anode, ce_window):
    if anode == "LTO":
        cell, v_min, v_max = coin("LCO", "LTO"), 1.5, 2.8
    else:
        cell, v_min, v_max = coin("NMC622", anode), 2.8, 4.2
    one_c = MASS_KG * 170.0
    q_ch, q_dis, _ = cycle(cell, one_c, v_min, v_max)
    assert ce_window[0] < 100 * q_dis / q_ch < ce_window[1]
    q_ch, q_dis, _ = cycle(cell, one_c, v_min, v_max)
    assert 99.7 < 100 * q_dis / q_ch <= 100.0


def test_fresh_cells_rest_at_their_pristine_ocv():
    assert 3.0 < coin("NMC622", "Li").ocv_V(25.0) < 3.55  # above its 3.0/2.8 V cutoff
    assert 3.0 < coin("NCM622", "Li", "LiPF6-EC-DEC-EMC").ocv_V(25.0) < 3.55  # paper model
    full = coin("NMC622", "graphite")
    assert full.ocv_V(25.0) < 2.0  # a fresh full cell: empty graphite
    cell = coin("NMC811", "graphite")
    one_c = MASS_KG * 170.0
    cycle(cell, one_c, 2.8, 4.2)
    run(cell, ConstantCurrent(0.1 * one_c, 5 * 3600.0, 10.0, until_voltage_V=4.2))
    run(cell, OpenCircuit(4 * 3600.0, 60.0))
    # the full cell's OCV is cathode minus anode at the balanced stoichiometries
    u_p = float(cell.positive.ocp(np.array([cell.theta_p]))[0])
    u_n = float(cell.negative.ocp(np.array([cell.theta_n]))[0])
    assert cell.ocv_V(25.0) == pytest.approx(u_p - u_n, abs=0.01)
    assert 0.06 < u_n < 0.15  # a charged graphite anode sits on its low staging plateaus


def test_graphite_staging_and_lto_plateau_in_the_ocp():
    g = coin("NMC622", "graphite").negative.ocp
    x = np.linspace(0.05, 0.95, 200)
    u = g(x)
    assert np.all(np.diff(u) <= 0) and 0.07 < u[-1] < 0.12
    assert 0.1 < g(np.array([0.5]))[0] < 0.16 < 0.3 < g(np.array([0.1]))[0]
    lto = coin("LCO", "LTO").negative.ocp(np.linspace(0.1, 0.9, 50))
    assert np.all(np.abs(lto - 1.55) < 0.03)


def test_silicon_hysteresis_depends_on_the_direction():
    cell = coin("NMC811", "Si-graphite")
    ocp = cell.negative.ocp
    x = np.array([0.1, 0.2])
    assert np.all(ocp(x, delithiating=True) > ocp(x))


def pulse_resistance_ohm_cm2(cell, one_c, temperature_C):
    run(cell, OpenCircuit(3600.0, 60.0), temperature_C)
    v0 = cell.ocv_V(temperature_C)
    seg = cell.begin(ConstantCurrent(-2 * one_c, 10.0, 1.0), temperature_C)
    v = float(seg.sample(np.array([10.0]))[0][0])
    seg.finish(10.0)
    return (v0 - v) / (2 * one_c) * CATHODE_AREA_M2 * 1e4


@pytest.mark.parametrize(("cathode", "anode", "v_max"), [("NMC622", "graphite", 4.2),
                                                          ("LFP", "graphite", 3.65)])
def test_pulse_resistance_is_ohm_cm2_scale_and_rises_in_the_cold(cathode, anode, v_max):
    cell = coin(cathode, anode)
    one_c = MASS_KG * 170.0
    run(cell, ConstantCurrent(0.2 * one_c, 4e5, 10.0, until_voltage_V=v_max))
    run(cell, ConstantCurrent(-0.2 * one_c, 2.5 * 3600.0, 10.0))  # to about half charge
    r = {t: pulse_resistance_ohm_cm2(cell, one_c, t) for t in (45.0, 25.0, 0.0)}
    assert 3 < r[25.0] < 100
    assert r[45.0] < r[25.0] < r[0.0]


def test_gitt_relaxation_follows_the_materials_diffusivity():
    """After a pulse the surface relaxes to the bulk on R^2/D: a material with 10x the D relaxes
    about 10x faster."""
    import copy

    from materials import builtin

    def relax_time(scale):
        cat = builtin().resolve("NMC622").params()
        an = builtin().resolve("Li").params()
        el = builtin().resolve("LiPF6-EC-EMC").params()
        cat = copy.deepcopy(cat)
        cat["electrode"]["diffusivity_m2_per_s"] *= scale
        from simulators.cells.lab_cell import lab_electrode_pair
        cell = lab_electrode_pair(cat, an, el, MASS_KG, CATHODE_AREA_M2, 25e-6,
                                  MEMBRANE_AREA_M2, 1.1)
        one_c = MASS_KG * 170.0
        run(cell, ConstantCurrent(0.1 * one_c, 3600.0 * 3, 10.0))
        seg = cell.begin(OpenCircuit(48 * 3600.0, 10.0), 25.0)
        t = np.geomspace(1.0, 48 * 3600.0, 800)
        v = seg.sample(t)[0]
        return float(np.interp(0.5 * (v[0] + v[-1]), v[::-1], t[::-1]))

    # slow diffusion (R^2/D of hours) dominates the relaxation over the electrolyte's seconds
    ratio = relax_time(0.01) / relax_time(0.1)
    assert 5 < ratio < 20


def test_solid_electrolytes_follow_arrhenius_with_a_grain_boundary_arc_in_the_cold():
    from materials import builtin
    from simulators.cells._common import membrane_resistances

    llzo = builtin().resolve("LLZO").params()
    r = {t: membrane_resistances(llzo, 1e-3, math.pi * 0.005**2, t) for t in (-20.0, 25.0, 80.0)}
    assert sum(r[-20.0]) > 20 * sum(r[80.0])  # Arrhenius: steeply more resistive in the cold
    share = {t: r_gb / (r_b + r_gb) for t, (r_b, r_gb) in r.items()}
    assert share[-20.0] > share[25.0] > share[80.0]  # Ea_gb > Ea_bulk: the gb arc grows
    # the cold spectrum shows the grain-boundary arc: between the arcs and the blocking
    # electrodes' tail (where -Im is least) the real part is bulk plus grain boundary
    cell = build_cell("blocking", "LLZO", 1e-3, math.pi * 0.005**2)
    z = cell.impedance(np.geomspace(1e5, 100.0, 200), -20.0)
    plateau = z.real[np.argmin(-z.imag)]
    assert plateau > 1.8 * r[-20.0][0]
    assert plateau == pytest.approx(sum(r[-20.0]), rel=0.15)


def test_blocking_cells_pass_an_electronic_current_under_dc_polarisation():
    cell = build_cell("blocking", "Li6PS5Cl", 1e-3, math.pi * 0.005**2)
    seg = cell.begin(ConstantVoltage(0.5, 3600.0, 10.0), 25.0)
    i_end = float(seg.sample(np.array([3600.0]))[1][0])
    sigma_e = i_end * 1e-1 / (0.5 * math.pi * 0.5**2)  # S/cm from I d / (V A)
    assert 1e-9 < sigma_e < 1e-7


def test_li_li_in_a_liquid_polarises_tens_of_mv_and_shorts_at_a_few_ma_per_cm2():
    cell = build_cell("symmetric_li", "LiPF6-EC-EMC", 25e-6, MEMBRANE_AREA_M2)
    area_cm2 = MEMBRANE_AREA_M2 * 1e4
    seg = cell.begin(ConstantCurrent(1e-3 * area_cm2, 1800.0, 10.0), 25.0)
    v = float(seg.sample(np.array([1800.0]))[0][0])
    seg.finish(1800.0)
    assert 0.02 < v < 0.06
    ccd = float(cell.params["ccd_mA_per_cm2"])
    assert 1.0 < ccd < 6.0
    seg = cell.begin(ConstantCurrent(1.5 * ccd * 1e-3 * area_cm2, 600.0, 1.0), 25.0)
    assert abs(float(seg.sample(np.array([600.0]))[0][0])) < v  # shorted: below 1 mA/cm^2's


REFERENCE = json.loads((ROOT / "tests" / "data" / "pybamm_reference.json").read_text())
DESIGNS = yaml.safe_load((ROOT / "benchmarks" / "data" / "pybamm_cells.yaml").read_text())["cells"]


@pytest.mark.parametrize("case", sorted(REFERENCE["cases"]))
def test_two_electrode_cells_against_pybamm_dfn(case):
    ref = REFERENCE["cases"][case]
    design = DESIGNS[ref["cell"]]
    cell = published_cell(design)
    one_c = float(design["capacity_Ah"])
    temp = float(ref["temperature_C"])
    v_min, v_max = float(design["v_min_V"]), float(design["v_max_V"])
    run(cell, ConstantCurrent(0.5 * one_c, 6 * 3600.0, 10.0, until_voltage_V=v_max), temp)
    run(cell, ConstantVoltage(v_max, 36000.0, 10.0, until_abs_current_A=0.02 * one_c), temp)
    run(cell, OpenCircuit(3600.0, 60.0), temp)
    current = float(ref["c_rate"]) * one_c
    seg = cell.begin(ConstantCurrent(-current, 5400.0 / ref["c_rate"], 1.0,
                                     until_voltage_V=v_min), temp)
    capacity = seg.duration_s * current / 3600.0
    q_ref = np.linspace(0.0, ref["capacity_Ah"], len(ref["voltage_V"]))
    q = np.linspace(0.0, min(capacity, ref["capacity_Ah"]), 200)
    v = seg.sample(q * 3600.0 / current)[0]
    rmse_mV = 1e3 * float(np.sqrt(np.mean((v - np.interp(q, q_ref, ref["voltage_V"])) ** 2)))
    d_cap = abs(capacity / ref["capacity_Ah"] - 1)
    if ref["c_rate"] <= 1.0 and temp == 25.0:  # the benchmark's targets
        assert d_cap < 0.03 and rmse_mV <= 30.0
    else:  # 2C and the temperatures: reported by the benchmark, held here to twice as much
        assert d_cap < 0.06 and rmse_mV <= 60.0


def test_a_two_electrode_cells_state_round_trips_for_resume():
    one_c = MASS_KG * 170.0
    cell = coin("NMC811", "Si-graphite")
    run(cell, ConstantCurrent(0.5 * one_c, 3600.0, 10.0, until_voltage_V=4.2))
    run(cell, ConstantCurrent(-one_c, 600.0, 10.0))
    saved = json.loads(json.dumps(cell.state()))
    twin = coin("NMC811", "Si-graphite")
    twin.restore(saved)
    rest = OpenCircuit(600.0, 10.0)
    t = np.linspace(0.0, 600.0, 7)
    assert np.allclose(cell.begin(rest, 25.0).sample(t)[0], twin.begin(rest, 25.0).sample(t)[0],
                       atol=1e-12)
    with pytest.raises(ValueError, match="not attributes"):
        twin.restore({"bogus": 1.0})


def test_sweeps_and_holds_on_a_two_electrode_cell_keep_charge_and_range():
    from drivers.techniques import VoltageSweep

    cell = coin("NMC622", "Li")
    seg = cell.begin(VoltageSweep((4.3, 3.0), 0.5e-3, 10.0), 25.0)
    t = np.linspace(0.0, seg.duration_s, 20001)
    v, i = seg.sample(t)
    seg.finish(seg.duration_s)
    assert v[-1] == pytest.approx(3.0) and abs(i[-1]) < 1e-4  # relithiated as far as it goes
    q = np.trapezoid(i, t)
    assert cell.charged_C - cell.discharged_C == pytest.approx(q, abs=0.02 * cell.charged_C)
    assert 0.0 < cell.theta_p <= 0.981 and 3.0 < cell.ocv_V(25.0) < 3.6


def test_a_gitt_pulse_is_diffusion_limited_with_the_materials_d():
    """Early in a pulse the surface moves as (N / c_max) (2 sqrt(t / (pi D)) + t / R) (a sphere's
    short-time solution: semi-infinite diffusion plus curvature), with D the library's: the
    sqrt(t) transient GITT reads D from."""
    from simulators.cells.electrode_pair import FARADAY

    cell = coin("NMC622", "Li")
    p = cell.positive
    current = 0.1 * MASS_KG * 170.0
    step = cell._cc(current, 25.0)
    n_flux = current / (FARADAY * p.surface_m2)
    d = p.diffusivity(25.0)
    t = np.array([1.0, 4.0, 16.0])
    moved = cell.theta_p - step.surfaces(t)[0]  # delithiation lowers the surface stoichiometry

    def short_time(t: np.ndarray, d: float) -> np.ndarray:
        return n_flux / p.c_max * (2 * np.sqrt(t / (np.pi * d)) + t / p.radius)

    assert moved == pytest.approx(short_time(t, d), rel=0.03)
    slow = coin("NMC622", "Li")
    slow.positive.params = {**slow.positive.params,
                            "diffusivity_m2_per_s": p.params["diffusivity_m2_per_s"] / 4}
    moved_slow = slow.theta_p - slow._cc(current, 25.0).surfaces(np.array([16.0]))[0][0]
    assert moved_slow == pytest.approx(short_time(np.array([16.0]), d / 4)[0], rel=0.03)
    assert moved_slow > 1.7 * moved[2]  # about twice: sqrt(4), less the curvature term
