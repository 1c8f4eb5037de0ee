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
    "pulse_resistance",
    "electronic_conductivity",
    "ohmic_resistance",
    "charge_transfer_resistance",
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
    "pulse_resistance": "Ohm",
    "electronic_conductivity": "S/cm",
    "ohmic_resistance": "Ohm",
    "charge_transfer_resistance": "Ohm",
}

#: Quantities also reported in a unit of another dimension, as records of their own: a pulse
#: resistance in Ohm and, area-specific, in Ohm cm2 (with the condition ``area_specific``).
ALSO_REPORTED_IN: dict[str, tuple[str, ...]] = {"pulse_resistance": ("Ohm cm2",)}


def reported_units(quantity: str) -> tuple[str, ...]:
    """The units records of ``quantity`` come in (an expected value may be written in any
    unit of the same dimension as one of them)."""
    unit = QUANTITY_UNITS.get(quantity)
    return (unit, *ALSO_REPORTED_IN.get(quantity, ())) if unit else ()


#: Pass band of an expected value that gives no tolerance: +-5 % of it (the one default, for
#: protocol files and reports alike).
DEFAULT_RELATIVE_TOLERANCE = 0.05
