"""A lab's coin or pouch cell as an :class:`ElectrodePairCell`: sizes from the protocol.

The cathode's active volume follows from its active mass: m / (M c_max) for one Li site per
formula unit at stoichiometry 1, or m / density for parameter sets whose OCP stoichiometry is
normalised to their own c_max (``site_basis``); its thickness from the electrode's
active-material fraction. Its window is where its OCP vs Li
crosses the material's ``v_min_V`` / ``v_max_V``. An intercalation anode is sized by the N/P ratio
(anode over cathode capacity, each in its own window vs Li) on the cathode's area. A pristine
cathode sits at ``stoichiometry_pristine`` (nearly fully lithiated), a pristine anode at its own
(empty), so a fresh cell rests at the difference of those OCPs (unless a protocol's
``initial_state`` starts it formed: :meth:`ElectrodePairCell.start_formed`); the cathode is
never lithiated beyond its pristine state (a half cell's first coulombic efficiency stays
below 100 %); the first lithiation of the anode loses ``first_cycle_loss_fraction`` of the
cathode's window to SEI. The separator or membrane is the electrolyte's membrane resistance
(``sigma_25C_S_per_cm``, ``ea_eV``, grain boundaries) over the protocol's thickness and area.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulators.cells._common import FARADAY, membrane_resistances
from simulators.cells.electrode_pair import Electrode, ElectrodePairCell, Electrolyte, Ocp

#: A liquid's separator: porosity and Bruggeman exponent for the concentration profile (a
#: wetted polyolefin separator, assumed).
SEPARATOR_POROSITY = 0.4
SEPARATOR_BRUGGEMAN = 1.5


def _window(ocp: Ocp, v_low: float, v_high: float) -> tuple[float, float]:
    """(stoichiometry at v_high, at v_low): the OCP falls with stoichiometry."""
    return ocp.stoichiometry_at(v_high), ocp.stoichiometry_at(v_low)


def lab_electrode_pair(cathode: Mapping[str, Any], anode: Mapping[str, Any],
                       electrolyte: Mapping[str, Any], active_mass_kg: float,
                       cathode_area_m2: float, thickness_m: float, area_m2: float,
                       np_ratio: float) -> ElectrodePairCell:
    cp = cathode.get("electrode")
    if cp is None:
        raise ValueError(f"cathode {cathode['name']!r} has no electrode block for a"
                         " two-electrode cell")
    if active_mass_kg <= 0 or cathode_area_m2 <= 0:
        raise ValueError("a full cell needs a positive cathode mass and area")
    if cp.get("site_basis", "formula") == "density":
        v_p = active_mass_kg / (float(cathode["density_g_per_cm3"]) * 1e3)
    else:
        molar_mass = float(cathode["molar_mass_g_per_mol"]) * 1e-3
        v_p = active_mass_kg / molar_mass / float(cp["c_max_mol_per_m3"])
    positive = Electrode(cp, v_p, v_p / (cathode_area_m2 * float(cp["active_fraction"])),
                         cathode_area_m2)
    lo_p, hi_p = _window(positive.ocp, float(cp["v_min_V"]), float(cp["v_max_V"]))
    theta_p = min(float(cp["stoichiometry_pristine"]), hi_p)
    q_cathode_C = positive.capacity_C_per_unit * (min(hi_p, theta_p) - lo_p)
    membrane = dict(electrolyte)

    def separator_ohm(temperature_C: float) -> float:
        return sum(membrane_resistances(membrane, thickness_m, area_m2, temperature_C))

    el = Electrolyte(membrane, electrolyte.get("liquid"), separator_ohm, thickness_m,
                     SEPARATOR_POROSITY, SEPARATOR_BRUGGEMAN)
    if anode.get("lithium_metal"):
        return ElectrodePairCell(positive, None, el, theta_p, 0.0, theta_p_max=theta_p)
    ap = anode.get("electrode")
    if ap is None:
        raise ValueError(f"anode {anode['name']!r} has no electrode block")
    ocp_n = Ocp(ap["ocp"])
    lo_n, hi_n = _window(ocp_n, float(ap["v_min_V"]), float(ap["v_max_V"]))
    v_n = np_ratio * q_cathode_C / (FARADAY * float(ap["c_max_mol_per_m3"]) * (hi_n - lo_n))
    negative = Electrode(ap, v_n, v_n / (cathode_area_m2 * float(ap["active_fraction"])),
                         cathode_area_m2)
    sei = float(ap["first_cycle_loss_fraction"]) * q_cathode_C
    return ElectrodePairCell(positive, negative, el, theta_p,
                             float(ap["stoichiometry_pristine"]), sei_loss_C=sei,
                             theta_p_max=theta_p)


__all__ = ["lab_electrode_pair"]
