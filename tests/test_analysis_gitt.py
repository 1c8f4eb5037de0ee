"""GITT diffusion coefficients from a series built from the Weppner-Huggins formula itself: each
pulse's dE_s is chosen so that its D is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import AnalysisError
from analysis.gitt import gitt_diffusion, gitt_length_scale

# NCM811 on a 12 mm disc (physics.md): 2.149 mg; M = 97.3 g/mol, density 4.75 g/cm^3 (assumed).
MASS_KG, MOLAR_MASS, AREA_M2 = 2.149e-6, 0.0973, 1.131e-4
MOLAR_VOLUME = MOLAR_MASS / 4750.0
TAU_S, REST_S, DT_S = 600.0, 3600.0, 2.0
CURRENT_A, R_OHMIC, RELAX_S = 0.043e-3, 12.0, 200.0


def expected_d(n: int) -> np.ndarray:
    """About 1e-10 cm^2/s = 1e-14 m^2/s at mid state of charge, varying by pulse."""
    return 1e-14 * (1 + 0.5 * np.sin(np.arange(n)))


def gitt_series(n: int = 8, sign: float = 1.0, noise_V: float = 0.0, seed: int = 3,
                trailing_pulse: bool = True):
    """Rest, then n x (pulse of tau, rest): during a pulse E = E_k + sign (I R + b sqrt(t)),
    with dE_tau = b sqrt(tau); in the rest after it E relaxes to E_k + dE_s with
    dE_s = dE_tau sqrt(pi D tau / 4) / L. Optionally a last pulse with no rest after it."""
    length = gitt_length_scale(MASS_KG, MOLAR_VOLUME, MOLAR_MASS, AREA_M2)
    rng = np.random.default_rng(seed)
    t_parts, v_parts, i_parts = [], [], []
    clock, e_rest = 0.0, 3.70

    def add(tt, vv, current):
        nonlocal clock
        t_parts.append(clock + tt)
        v_parts.append(vv + noise_V * rng.standard_normal(tt.size))
        i_parts.append(np.full(tt.size, current))
        clock += tt[-1]

    tr = np.arange(0.0, REST_S + DT_S / 2, DT_S)
    tp = np.arange(0.0, TAU_S + DT_S / 2, DT_S)
    add(tr, np.full(tr.size, e_rest), 0.0)
    for k, d in enumerate(expected_d(n)):
        de_tau = sign * (0.015 + 0.002 * k)
        de_s = de_tau * np.sqrt(np.pi * d * TAU_S / 4) / length
        add(tp, e_rest + sign * CURRENT_A * R_OHMIC + de_tau * np.sqrt(tp / TAU_S),
            sign * CURRENT_A)
        after = e_rest + de_s + (de_tau - de_s) * np.exp(-tr / RELAX_S)
        add(tr, after, 0.0)
        e_rest += de_s
    if trailing_pulse:
        add(tp, e_rest + sign * CURRENT_A * R_OHMIC + 0.01 * np.sqrt(tp / TAU_S),
            sign * CURRENT_A)
    return np.concatenate(t_parts), np.concatenate(v_parts), np.concatenate(i_parts)


MATERIAL = {"active_mass_kg": MASS_KG, "molar_volume_m3_per_mol": MOLAR_VOLUME,
            "molar_mass_kg_per_mol": MOLAR_MASS, "area_m2": AREA_M2}


def test_length_scale_is_a_dense_layer_thickness():
    # 2.149 mg at 4.75 g/cm^3 over 1.131 cm^2: 4.0 um.
    assert gitt_length_scale(**MATERIAL) == pytest.approx(2.149e-3 / 4.75 / 1.131 * 1e-2,
                                                          rel=1e-12)


@pytest.mark.parametrize("ir_drop", ["sqrt_fit", "first_point"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_diffusion_coefficients_are_recovered(ir_drop, sign):
    table = gitt_diffusion(*gitt_series(sign=sign), ir_drop=ir_drop, **MATERIAL)
    assert len(table) == 8  # the trailing pulse has no rest after it
    assert table["tau_s"].to_numpy() == pytest.approx(TAU_S)
    assert table["diffusion_m2_s"].to_numpy() == pytest.approx(expected_d(8), rel=1e-6)
    assert np.all(np.sign(table["dE_s_V"]) == sign)
    if ir_drop == "sqrt_fit":
        assert table["sqrt_fit_r2"].to_numpy() == pytest.approx(1.0, abs=1e-12)


def test_seeded_noise():
    table = gitt_diffusion(*gitt_series(noise_V=0.1e-3, seed=12), **MATERIAL)
    assert table["diffusion_m2_s"].to_numpy() == pytest.approx(expected_d(8), rel=0.05)


def test_a_length_gives_the_same_answer():
    t, v, i = gitt_series()
    by_length = gitt_diffusion(t, v, i, length_m=gitt_length_scale(**MATERIAL))
    by_material = gitt_diffusion(t, v, i, **MATERIAL)
    assert by_length["diffusion_m2_s"].to_numpy() == pytest.approx(
        by_material["diffusion_m2_s"].to_numpy(), rel=1e-12
    )
    # D scales with L^2: a particle radius of 2 um instead of 4.0 um gives a quarter.
    quarter = gitt_diffusion(t, v, i, length_m=gitt_length_scale(**MATERIAL) / 2)
    assert quarter["diffusion_m2_s"].to_numpy() == pytest.approx(expected_d(8) / 4, rel=1e-6)


def test_the_length_must_be_given_one_way():
    t, v, i = gitt_series(n=2)
    with pytest.raises(AnalysisError, match="not both"):
        gitt_diffusion(t, v, i, length_m=4e-6, **MATERIAL)
    with pytest.raises(AnalysisError, match="give length_m, or all"):
        gitt_diffusion(t, v, i, active_mass_kg=MASS_KG)
    with pytest.raises(AnalysisError, match="area_m2"):
        gitt_diffusion(t, v, i, **{**MATERIAL, "area_m2": 0.0})


def test_no_complete_pulse_gives_an_empty_table():
    t, v, i = gitt_series(n=0)
    assert gitt_diffusion(t, v, i, length_m=4e-6).empty
