"""Material parameters for the simulated cells, from cellseq's material library (:mod:`materials`).

Names are resolved by the library's one matcher (the one protocol validation and the analysis
use). An unknown name is refused with :class:`~materials.UnknownMaterial` (closest known names and
how to add a material); nothing is ever substituted. ``library`` lets a campaign's own material
folder join the built-in library.
"""

from __future__ import annotations

from typing import Any

from materials import Library, MaterialKind, UnknownMaterial, builtin


def known_materials(kind: MaterialKind | None = None, library: Library | None = None
                    ) -> list[str]:
    """Canonical names of the materials that have a parameter file, optionally of one kind."""
    return (library or builtin()).names(kind)


def is_known(name: str, library: Library | None = None) -> bool:
    return (library or builtin()).find(name) is not None


def load_material(name: str, kind: MaterialKind | None = None,
                  library: Library | None = None) -> dict[str, Any]:
    """Parameters of ``name`` (a fresh copy the caller may change); refuses an unknown name, or
    a known one of another ``kind``, with :class:`~materials.UnknownMaterial`."""
    return (library or builtin()).resolve(name, kind).params()


__all__ = ["UnknownMaterial", "is_known", "known_materials", "load_material"]
