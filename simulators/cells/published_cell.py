"""A published cell (a parameter set with its electrode sizes) as an :class:`ElectrodePairCell`.

The PyBaMM fidelity benchmark and its tests build cells this way, from
``benchmarks/data/pybamm_cells.yaml``: both electrodes' physics (the library's ``electrode``
block format), their thicknesses and the electrode area, the separator, the electrolyte (the
library's ``liquid`` block) and the stoichiometries the set starts from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulators.cells._common import arrhenius_factor
from simulators.cells.electrode_pair import Electrode, ElectrodePairCell, Electrolyte

#: A liquid's membrane keys are not used by a two-electrode cell except its Li metal interface;
#: a published cell has none, so these stand in for the keys its Electrolyte carries.
_NO_MEMBRANE: dict[str, Any] = {"sigma_25C_S_per_cm": 0.0, "ea_eV": 0.0}


def published_cell(design: Mapping[str, Any]) -> ElectrodePairCell:
    """A fresh cell in the set's initial state (uniform, at rest)."""
    area = float(design["area_m2"])

    def electrode(side: Mapping[str, Any]) -> Electrode:
        params = side["electrode"]
        thickness = float(side["thickness_m"])
        return Electrode(params, float(params["active_fraction"]) * thickness * area, thickness,
                         area)

    liquid = design["electrolyte"]
    sep = design["separator"]
    sep_l, sep_eps, sep_b = (float(sep["thickness_m"]), float(sep["porosity"]),
                             float(sep["bruggeman"]))
    kappa25 = float(liquid["conductivity_S_per_m"])
    ea_eV = float(liquid["conductivity_ea_J_per_mol"]) / 96485.33212

    def separator_ohm(temperature_C: float) -> float:
        kappa = kappa25 / arrhenius_factor(ea_eV, temperature_C)
        return sep_l / (kappa * sep_eps**sep_b * area)

    el = Electrolyte(_NO_MEMBRANE, liquid, separator_ohm, sep_l, sep_eps, sep_b)
    return ElectrodePairCell(electrode(design["positive"]), electrode(design["negative"]), el,
                             float(design["positive"]["initial_stoichiometry"]),
                             float(design["negative"]["initial_stoichiometry"]))


__all__ = ["published_cell"]
