"""Cells as a lab describes them: what they are made of and their geometry."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, PrivateAttr, Strict, field_validator, model_validator

from materials import Library
from protocols.types import (
    FROZEN,
    HOUR_S,
    Area,
    ArealMass,
    Identifier,
    Length,
    PositiveCurrent,
    SpecificCapacity,
    StateOfCharge,
    Temperature,
    Voltage,
)


class CellKind(StrEnum):
    BLOCKING = "blocking"          # SS|electrolyte|SS, for conductivity
    SYMMETRIC_LI = "symmetric_li"  # Li|electrolyte|Li
    LI_CU = "li_cu"                # Li|electrolyte|Cu, plating efficiency
    FULL_CELL = "full_cell"        # cathode|electrolyte|anode (Li metal unless ``anode`` says)


def _disc_area(area: float | None, diameter: float | None, where: str) -> float:
    if (area is None) == (diameter is None):
        raise ValueError(f"give exactly one of {where}area or {where}diameter")
    return area if area is not None else math.pi * (diameter / 2) ** 2


class Cathode(BaseModel):
    """The cathode disc of a full cell; its mass and specific capacity define 1C."""

    model_config = FROZEN
    material: str = Field(min_length=1, max_length=64)
    loading: ArealMass
    area: Area | None = None
    diameter: Length | None = None
    specific_capacity: SpecificCapacity

    @model_validator(mode="after")
    def _one_geometry(self) -> Cathode:
        _disc_area(self.area, self.diameter, "")
        return self

    @property
    def area_m2(self) -> float:
        return _disc_area(self.area, self.diameter, "")

    @property
    def active_mass_kg(self) -> float:
        return self.loading * self.area_m2

    @property
    def capacity_Ah(self) -> float:
        """Nominal 1C capacity: specific capacity (A s/kg) x active mass, in Ah."""
        return self.specific_capacity * self.active_mass_kg / HOUR_S


class Limits(BaseModel):
    """Safety limits checked on every point, independent of how steps end."""

    model_config = FROZEN
    max_voltage: Voltage | None = None
    min_voltage: Voltage | None = None
    max_current: PositiveCurrent | None = None
    max_temperature: Temperature | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        if (self.max_voltage is not None and self.min_voltage is not None
                and self.min_voltage >= self.max_voltage):
            raise ValueError("min_voltage must be below max_voltage")
        return self


class InitialState(BaseModel):
    """The state a dry run's simulated cell starts in: a full cell that has been formed (its
    SEI grown, its anode's first-cycle loss taken) and rests at ``soc``, a share of that formed
    cell's own capacity between its empty and full states. Without it a simulated full cell
    starts as assembled: unformed, fully discharged, a graphite or silicon anode still empty
    (near 0-1 V). It describes the cell for the simulators only: on hardware the cell is what
    it is, nothing is measured or set from it, and the analysis does not use it."""

    model_config = FROZEN
    #: Only ``true``: an unformed cell is the default, written by leaving initial_state out.
    formed: Annotated[bool, Strict()]
    soc: StateOfCharge

    @field_validator("formed")
    @classmethod
    def _only_formed(cls, formed: bool) -> bool:
        if not formed:
            raise ValueError("must be true: a simulated cell starts unformed unless"
                             " initial_state says otherwise, so leave initial_state out for an"
                             " unformed cell")
        return formed


class Cell(BaseModel):
    """One cell on the bench. ``thickness`` and area/diameter describe the electrolyte membrane."""

    model_config = FROZEN
    id: Identifier
    kind: CellKind
    electrolyte: str = Field(min_length=1, max_length=64)
    thickness: Length
    area: Area | None = None
    diameter: Length | None = None
    cathode: Cathode | None = None
    #: A full cell's anode material (a library name: Li, graphite, Si-graphite, LTO...)
    anode: str = Field(default="Li", min_length=1, max_length=64)
    #: N/P ratio of a full cell with an intercalation anode: anode over cathode capacity
    np_ratio: float = Field(default=1.1, ge=0.5, le=5.0)
    limits: Limits = Limits()
    #: Where a dry run's simulated full cell starts (formed, at a state of charge); hardware
    #: ignores it. None: as assembled (unformed, discharged).
    initial_state: InitialState | None = None
    notes: str = ""
    _material_library: Library | None = PrivateAttr(default=None)
    _capacity_basis_Ah: float | None = PrivateAttr(default=None)

    @property
    def material_library(self) -> Library | None:
        """The campaign's material library when it has the lab's own materials (else None:
        the built-in one); set when the campaign is loaded."""
        return self._material_library

    @model_validator(mode="after")
    def _geometry_and_cathode(self) -> Cell:
        _disc_area(self.area, self.diameter, "")
        if self.kind is CellKind.FULL_CELL and self.cathode is None:
            raise ValueError("a full_cell needs a cathode (material, loading, diameter or area,"
                             " specific_capacity)")
        if self.kind is not CellKind.FULL_CELL and self.cathode is not None:
            raise ValueError(f"a {self.kind.value} cell has no cathode; remove the cathode block")
        if self.kind is not CellKind.FULL_CELL and self.initial_state is not None:
            raise ValueError(f"a {self.kind.value} cell has no state of charge to start at;"
                             " initial_state is for full cells")
        return self

    @property
    def membrane_area_m2(self) -> float:
        return _disc_area(self.area, self.diameter, "")

    @property
    def electrode_area_m2(self) -> float:
        """The area a current density refers to: the cathode for full cells, else the membrane."""
        return self.cathode.area_m2 if self.cathode else self.membrane_area_m2

    @property
    def capacity_Ah(self) -> float | None:
        """What 1C is taken of: the cathode's nominal capacity, or the measured capacity a
        step's ``c_rate_reference`` gave (:meth:`with_capacity`)."""
        if self._capacity_basis_Ah is not None:
            return self._capacity_basis_Ah
        return self.cathode.capacity_Ah if self.cathode else None

    def with_capacity(self, capacity_Ah: float) -> Cell:
        """This cell with 1C taken of ``capacity_Ah`` (a capacity the run measured) instead of
        the nominal one: what a step's C-rates, SOC and time limit are built against."""
        copy = self.model_copy()
        copy._capacity_basis_Ah = capacity_Ah
        return copy
