"""cellseq's material library, shared by protocol validation, the simulated lab and the analysis.

Why a package of its own: protocols (which validate material names), simulators (which need the
physics) and analysis (which needs molar properties) all read it, and none of them may import
another upward. So the library depends on nothing of cellseq: YAML files (``library/``), the
schema they follow (:mod:`materials.schema`), the name matcher (:mod:`materials.matcher`) and
the loader (:mod:`materials.library`).
"""

from materials.library import (
    HOW_TO_ADD,
    LIBRARY_DIR,
    Library,
    Material,
    UnknownMaterial,
    builtin,
    parse_material,
    read_material,
)
from materials.matcher import closest, key, parse_recipe
from materials.schema import MaterialFile, MaterialKind

__all__ = ["HOW_TO_ADD", "LIBRARY_DIR", "Library", "Material", "MaterialFile", "MaterialKind",
           "UnknownMaterial", "builtin", "closest", "key", "parse_material", "parse_recipe",
           "read_material"]
