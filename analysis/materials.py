"""Molar properties of cathode materials, for GITT's length scale L = m V_M / (M S).

Handbook values (crystallographic densities); a material not listed raises, rather than
silently using another's.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.errors import AnalysisError


@dataclass(frozen=True)
class MolarProperties:
    molar_mass_kg_per_mol: float
    density_kg_per_m3: float

    @property
    def molar_volume_m3_per_mol(self) -> float:
        return self.molar_mass_kg_per_mol / self.density_kg_per_m3


_TABLE = {
    "ncm811": MolarProperties(0.09728, 4750.0),   # LiNi0.8Mn0.1Co0.1O2
    "ncm622": MolarProperties(0.09682, 4700.0),   # LiNi0.6Mn0.2Co0.2O2
    "lfp": MolarProperties(0.15776, 3600.0),      # LiFePO4
}


def molar_properties(material: str) -> MolarProperties:
    key = material.lower().replace("-", "").replace(" ", "")
    try:
        return _TABLE[key]
    except KeyError:
        raise AnalysisError(f"no molar properties for cathode {material!r}; known:"
                            f" {', '.join(_TABLE)}") from None
