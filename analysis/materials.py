"""Molar properties of electrode materials, for GITT's length scale L = m V_M / (M S).

They come from cellseq's material library (:mod:`materials`), the one the simulated lab and
protocol validation use, so a name one accepts the others accept (``NMC622`` as ``NCM622``). A
material without a molar mass and density, or an unknown name, raises rather than silently using
another's.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.errors import AnalysisError
from materials import Library, UnknownMaterial, builtin


@dataclass(frozen=True)
class MolarProperties:
    molar_mass_kg_per_mol: float
    density_kg_per_m3: float

    @property
    def molar_volume_m3_per_mol(self) -> float:
        return self.molar_mass_kg_per_mol / self.density_kg_per_m3


def molar_properties(material: str, library: Library | None = None) -> MolarProperties:
    """Molar mass and density of an electrode material, by any name the library accepts."""
    try:
        m = (library or builtin()).resolve(material)
    except UnknownMaterial as exc:
        raise AnalysisError(f"no molar properties for {material!r}: {exc}") from None
    doc = m.doc
    if m.kind == "electrolyte" or doc.molar_mass_g_per_mol is None or doc.density_g_per_cm3 is None:
        raise AnalysisError(f"no molar properties for {material!r}: the library's {m.name} gives"
                            " no molar_mass_g_per_mol and density_g_per_cm3")
    return MolarProperties(doc.molar_mass_g_per_mol * 1e-3, doc.density_g_per_cm3 * 1e3)


def particle_radius_m(material: str, library: Library | None = None) -> float | None:
    """The active particles' radius the library gives for an electrode material (its
    ``electrode`` block), or None where it gives none (an unknown name raises)."""
    try:
        m = (library or builtin()).resolve(material)
    except UnknownMaterial as exc:
        raise AnalysisError(f"no particle radius for {material!r}: {exc}") from None
    electrode = getattr(m.doc, "electrode", None)
    return None if electrode is None else float(electrode.particle_radius_m)
