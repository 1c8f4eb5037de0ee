"""What a material file must hold, checked the same way for the library and for a lab's folder.

A file has an identity (``name``, ``kind``, ``aliases``, ``formula``, molar mass and density,
an electrolyte's ``composition``), its ``sources`` (what value comes from which publication) and
``assumed`` (the values that no publication gives, listed apart, each with the reason; a plain
list of names is accepted too), and the parameters of the models that use it. How the names of
``sources`` and ``assumed`` cover values is :mod:`materials.provenance`'s; the schema checks
that every name mentions a key of the file and that no name is in both.

- every electrolyte: the membrane keys of :data:`MEMBRANE_KEYS` (blocking, Li||Li, Li||Cu cells);
  a liquid one also a ``liquid`` block (transport inside porous electrodes);
- a cathode or anode that can sit in a two-electrode cell: an ``electrode`` block (OCP table,
  maximum concentration, particle radius, solid diffusivity, exchange current, electrode
  microstructure), or ``lithium_metal: true`` for a Li metal anode;
- the paper's own cathodes keep their half-cell keys (:data:`PAPER_CATHODE_KEYS`).

Flat keys carry their unit in their name and must be numbers, lists of numbers or null.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from materials.provenance import split_names, unknown_names

MaterialKind = Literal["cathode", "anode", "electrolyte"]

_STRICT = ConfigDict(extra="forbid", frozen=True)

#: What a Li|electrolyte interface, a membrane and its oxidation window need.
MEMBRANE_KEYS = (
    "sigma_25C_S_per_cm", "ea_eV", "grain_boundary_fraction", "eps_r",
    "sigma_electronic_S_per_cm", "cpe_dl_q_S_s_n_per_cm2", "cpe_dl_n", "cpe_gb_q_S_s_n_cm",
    "cpe_gb_n", "r_int_ohm_cm2", "r_int_growth_ohm_cm2_per_sqrt_day",
    "r_int_polarisation_ohm_cm2", "ea_int_eV", "cpe_int_q_S_s_n_per_cm2", "cpe_int_n",
    "transference_number", "d_salt_cm2_per_s", "overpotential_current_density_mA_per_cm2",
    "overpotential_mV", "overpotential_rise_time_s", "overpotential_drift_per_1000h",
    "ccd_mA_per_cm2", "short_resistance_ohm", "short_onset_s", "short_after_mAh_per_cm2",
    "li_cu_coulombic_efficiency", "full_cell_fade_multiplier", "oxidation_onset_V",
    "oxidation_onset_current_density_A_per_cm2", "oxidation_tafel_V", "oxidation_ea_eV",
)

#: The paper's empirical cathode | electrolyte | Li model (simulators/cells/full_cell.py).
PAPER_CATHODE_KEYS = (
    "msmr_U0_V", "msmr_X", "msmr_w", "v_min_V", "v_max_V", "one_c_mA_per_g",
    "q_window_mAh_per_g", "q_rate_25C_mAh_per_g", "c_half_25C", "rate_exponent", "c_half_ea_eV",
    "capacity_temperature_C", "capacity_0p1C_mAh_per_g", "fade_percent_per_cycle",
    "coulombic_efficiency", "charge_offset_ratio", "surface_time_constant_s", "r_i_cycles",
    "r_i_ohm_cm2", "r_ct_cycles", "r_ct_ohm_cm2", "ea_interface_eV", "cpe_i_q_S_s_n_per_cm2",
    "cpe_i_n", "cpe_ct_q_S_s_n_per_cm2", "cpe_ct_n", "warburg_ohm_cm2_s_half",
)


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class Ocp(BaseModel):
    """Open-circuit potential vs Li/Li+ against stoichiometry (Li fraction of ``c_max``),
    tabulated from the published curve; ``delithiation_V`` is a second branch for materials
    with hysteresis (silicon): ``voltage_V`` is then the lithiation branch."""

    model_config = _STRICT
    stoichiometry: list[float] = Field(min_length=2, max_length=2000)
    voltage_V: list[float] = Field(min_length=2, max_length=2000)
    delithiation_V: list[float] | None = None

    @model_validator(mode="after")
    def _table(self) -> Ocp:
        x = self.stoichiometry
        if any(not (0.0 <= a <= 1.0) for a in x) or any(b <= a for a, b in pairwise(x)):
            raise ValueError("stoichiometry must rise strictly within [0, 1]")
        for branch in (self.voltage_V, self.delithiation_V):
            if branch is not None and len(branch) != len(x):
                raise ValueError("each voltage branch needs one value per stoichiometry")
            if branch is not None and not all(math.isfinite(v) and -1 < v < 7 for v in branch):
                raise ValueError("voltages must be finite, between -1 and 7 V vs Li")
        return self


class Electrode(BaseModel):
    """A porous intercalation electrode: single-particle physics plus its microstructure."""

    model_config = _STRICT
    ocp: Ocp
    c_max_mol_per_m3: float = Field(gt=0)
    particle_radius_m: float = Field(gt=0, lt=1e-3)
    diffusivity_m2_per_s: float = Field(gt=0, lt=1e-8)
    diffusivity_ea_J_per_mol: float = Field(ge=0, lt=2e5)
    exchange_current_m_ref: float = Field(gt=0)  # A/m^2 (m^3/mol)^1.5, PyBaMM's form
    exchange_current_ea_J_per_mol: float = Field(ge=0, lt=2e5)
    conductivity_S_per_m: float = Field(gt=0)
    active_fraction: float = Field(gt=0, le=1)
    porosity: float = Field(gt=0, lt=1)
    bruggeman_electrolyte: float = Field(ge=0, le=5)
    bruggeman_electrode: float = Field(ge=0, le=5)
    stoichiometry_pristine: float = Field(ge=0, le=1)
    #: what stoichiometry 1 means for a lab's electrode of a given mass: ``formula`` one Li per
    #: formula unit (active volume m / (M c_max)), ``density`` c_max in the crystal's volume
    #: (active volume m / density), for sets whose OCP is normalised to their own c_max
    site_basis: Literal["formula", "density"] = "formula"
    v_min_V: float  # the usual window vs Li/Li+ (half cells, balancing)
    v_max_V: float
    first_cycle_loss_fraction: float = Field(ge=0, lt=0.5)
    coulombic_efficiency: float = Field(gt=0.9, le=1)

    _f = field_validator("c_max_mol_per_m3", "particle_radius_m", "diffusivity_m2_per_s",
                         "exchange_current_m_ref", "v_min_V", "v_max_V")(_finite)

    @model_validator(mode="after")
    def _window(self) -> Electrode:
        if self.v_min_V >= self.v_max_V:
            raise ValueError("v_min_V must be below v_max_V")
        return self


class Liquid(BaseModel):
    """Electrolyte transport inside porous electrodes (values at the salt concentration)."""

    model_config = _STRICT
    concentration_mol_per_m3: float = Field(gt=0, le=1e4)
    conductivity_S_per_m: float = Field(gt=0, le=10)
    conductivity_ea_J_per_mol: float = Field(ge=0, lt=1e5)
    diffusivity_m2_per_s: float = Field(gt=0, lt=1e-7)
    diffusivity_ea_J_per_mol: float = Field(ge=0, lt=1e5)
    transference_number: float = Field(gt=0, lt=1)


class Composition(BaseModel):
    model_config = _STRICT
    salt: str = Field(min_length=1, max_length=20)
    solvents: list[str] = Field(min_length=1, max_length=6)
    additives: list[str] = Field(default_factory=list, max_length=6)


class MaterialFile(BaseModel):
    """One material file. Keys not named here are model parameters (numbers, lists, null)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(min_length=1, max_length=64)
    kind: MaterialKind
    aliases: list[str] = Field(default_factory=list, max_length=40)
    description: str = Field(default="", max_length=500)
    formula: str | None = Field(default=None, max_length=64)
    molar_mass_g_per_mol: float | None = Field(default=None, gt=0)
    density_g_per_cm3: float | None = Field(default=None, gt=0)
    composition: Composition | None = None
    #: one of the reference paper's own materials: its half cells keep the paper's calibrated model
    paper: bool = False
    lithium_metal: bool = False
    electrode: Electrode | None = None
    liquid: Liquid | None = None
    sources: dict[str, str] = Field(min_length=1)
    #: value name -> why no publication gives it (a list of names reads as reasons left blank)
    assumed: dict[str, str] = Field(default_factory=dict)

    @field_validator("assumed", mode="before")
    @classmethod
    def _assumed_list(cls, v: object) -> object:
        if isinstance(v, list):
            if not all(isinstance(x, str) for x in v):
                raise ValueError("assumed: a list of value names, or a mapping name -> reason")
            return dict.fromkeys(v, "")
        return v

    @model_validator(mode="after")
    def _parameters(self) -> MaterialFile:
        extra = self.model_extra or {}
        for k, v in extra.items():
            if not _numeric(v):
                raise ValueError(f"{k}: a model parameter must be a number, a list of numbers"
                                 " or null")
        have = set(extra)
        if self.kind == "electrolyte":
            missing = [k for k in MEMBRANE_KEYS if k not in have]
            if missing:
                raise ValueError(f"an electrolyte needs {', '.join(missing)}")
            if self.electrode is not None or self.lithium_metal:
                raise ValueError("an electrolyte has no electrode block")
        else:
            if self.liquid is not None or self.composition is not None:
                raise ValueError(f"a {self.kind} has no liquid or composition block")
            paper = any(k in have for k in PAPER_CATHODE_KEYS)
            if paper:
                missing = [k for k in PAPER_CATHODE_KEYS if k not in have]
                if missing:
                    raise ValueError(f"the half-cell model needs {', '.join(missing)}")
            if self.lithium_metal and self.kind != "anode":
                raise ValueError("only an anode can be lithium metal")
            if not (self.lithium_metal or self.electrode is not None or paper):
                raise ValueError(f"a {self.kind} needs an electrode block (or lithium_metal:"
                                 " true for a Li metal anode)")
        present = self.model_dump(exclude_unset=True)
        for what, names in (("sources", self.sources), ("assumed", self.assumed)):
            for entry in names:
                bad = unknown_names(present, split_names(entry))
                if bad:
                    raise _located(what, entry, f"{what} names {bad[0]!r}, which is not a key of"
                                   " this file")
        sourced = {n: e for e in self.sources for n in split_names(e)}
        for entry in self.assumed:
            both = [n for n in split_names(entry) if n in sourced]
            if both:
                raise _located("assumed", entry, f"{both[0]!r} is both in sources and in"
                               " assumed (a value is either sourced or assumed)")
        return self

    def parameters(self) -> dict[str, object]:
        """Everything as plain data (what the models read)."""
        return self.model_dump(mode="python")


def _located(field: str, entry: str, message: str) -> PydanticCustomError:
    """An error that says which ``sources``/``assumed`` entry is wrong (its ``ctx`` lets a
    loader point at the entry's line)."""
    text = message.replace("{", "{{").replace("}", "}}")
    return PydanticCustomError("material_name", text, {"field": field, "entry": entry})


def _numeric(v: object) -> bool:
    if v is None or isinstance(v, bool):
        return v is None
    if isinstance(v, int | float):
        return math.isfinite(float(v))
    if isinstance(v, list):
        return len(v) <= 10_000 and all(isinstance(x, int | float) and not isinstance(x, bool)
                                        and math.isfinite(float(x)) for x in v)
    return False


__all__ = ["MEMBRANE_KEYS", "PAPER_CATHODE_KEYS", "Composition", "Electrode", "Liquid",
           "MaterialFile", "MaterialKind", "Ocp"]
