"""The quantity names of the results contract, and the unit each is reported in.

A protocol's expected values name these quantities and the analysis derives them; both read the
list here, in the bottom layer, so that neither imports the other. The names are a closed list:
a typo would otherwise create a new quantity that nothing reads.
"""

from __future__ import annotations

#: The quantity names the contract allows, in the contract's order.
QUANTITY_NAMES: tuple[str, ...] = (
    "ionic_conductivity",
    "bulk_resistance",
    "activation_energy",
    "transference_number",
    "overpotential",
    "critical_current_density",
    "interfacial_resistance",
    "coulombic_efficiency",
    "discharge_capacity",
    "capacity_retention",
    "stability_window",
    "diffusion_coefficient",
)

#: The unit each quantity is reported in; an expected value may be written in any unit of the
#: same dimension (``cm^2/s`` or ``m2/s`` for ``cm2/s``), and is compared through pint.
QUANTITY_UNITS: dict[str, str] = {
    "ionic_conductivity": "mS/cm",
    "bulk_resistance": "Ohm",
    "activation_energy": "eV",
    "transference_number": "1",
    "overpotential": "mV",
    "critical_current_density": "mA/cm2",
    "interfacial_resistance": "Ohm",
    "coulombic_efficiency": "%",
    "discharge_capacity": "mAh/g",
    "capacity_retention": "%",
    "stability_window": "V",
    "diffusion_coefficient": "cm2/s",
}

#: Pass band of an expected value that gives no tolerance: +-5 % of it (the one default, for
#: protocol files and reports alike).
DEFAULT_RELATIVE_TOLERANCE = 0.05
