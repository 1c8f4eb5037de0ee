"""What the report made of each cell, kept beside it so that it is not made twice.

A cell's analysis (its results, notes and figures) depends on nothing but the cell's data in
the run store, its description and the code that analyses it. Once made (by a report, or while
the run was still going on, as each cell finished: :mod:`analysis.while_running`), it is kept
in ``report/cells/<cell>/`` under a key of those three:

- the cell's data: :meth:`store.RunStore.cell_digest` (every step row, every chunk's id,
  length and CRC-32);
- its description (kind, materials, geometry) and the experiments it is in, as the store has
  them;
- the code: every file of the packages the analysis runs (``analysis``, ``store``,
  ``materials`` with its data, ``core``), the versions of Python and of the libraries that
  compute or draw (numpy, scipy, pandas, matplotlib, impedance.py, Pillow), and the
  matplotlibrc in use. (Fonts installed or removed since are not in it: ``cellseq report
  --fresh`` draws every figure again.)

A report takes a kept cell only when its key is the one computed now; anything else (no entry,
another key, an entry that cannot be read or is incomplete) and the cell is analysed again.
A damaged store is never cached. Entries are JSON and PNG files, written whole (a temporary
file renamed): a crash while writing leaves the old entry or none, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from analysis.derived import Derived
from analysis.errors import AnalysisError
from analysis.results import Result
from analysis.run_data import RunData
from core.atomic_write import write_atomic
from store import RunStore

#: Under the report's directory.
CELLS_DIR = "cells"
_ENTRY = "entry.json"
#: The format of ``entry.json``; an entry of another format is made again.
FORMAT = 1
#: The packages whose files a cell's analysis runs or reads (the material library's data).
CODE_PACKAGES = ("analysis", "store", "materials", "core")
#: The libraries whose version can change a number or a pixel.
LIBRARIES = ("numpy", "scipy", "pandas", "matplotlib", "impedance", "pillow")
#: A cell name that is safe as a directory name (protocol identifiers all are).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
#: How much of the key a figure's file name carries.
_KEY_IN_NAME = 12

#: What one cell's analysis gives the report: its part of the results, notes and figures (as
#: PNG), the conductivities it found for the Arrhenius figures, and what of the store it could
#: not read.
Sigma = dict[tuple[str, str], list[tuple[float, float]]]


@dataclass(frozen=True)
class CellPart:
    derived: Derived
    sigma: Sigma
    damage: list[str]


@lru_cache(maxsize=1)
def code_key() -> str:
    """The key of the code that analyses a cell (see the module's docstring)."""
    digest = hashlib.blake2b(digest_size=16)
    for package in CODE_PACKAGES:
        spec = importlib.util.find_spec(package)
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        for root in map(Path, roots):
            for path in sorted(root.rglob("*")):
                if "__pycache__" in path.parts or not path.is_file():
                    continue
                digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
                digest.update(path.read_bytes())
    import matplotlib  # its settings file (matplotlibrc) styles every figure

    digest.update(Path(matplotlib.matplotlib_fname()).read_bytes())
    digest.update(sys.version.encode())
    for library in LIBRARIES:
        try:
            digest.update(f"\0{library}={version(library)}".encode())
        except PackageNotFoundError:
            digest.update(f"\0{library}=none".encode())
    return digest.hexdigest()


class CellCache:
    """The kept analyses of a run's cells, in ``report_dir/cells``; with ``reuse`` False,
    none is taken (:meth:`load` finds nothing) but every cell analysed is kept anew."""

    def __init__(self, data: RunData, report_dir: Path, reuse: bool = True,
                 settle: Callable[[], object] | None = None) -> None:
        self.run_dir, self.dir = data.run_dir, Path(report_dir) / CELLS_DIR
        self._cells, self._experiments, self.reuse = data.cells, data.experiments, reuse
        self._settle = settle
        #: the keys taken by :meth:`keys`: a process forked after takes them from here
        self._keys: dict[str, str | None] = {}
        code_key()   # here, once, not in each process forked to analyse cells

    def settle(self) -> None:
        """Stop what keeps cells here beside a run that just ended, before anything kept is
        read (once)."""
        settle, self._settle = self._settle, None
        if settle is not None:
            settle()

    def key(self, cell: str, store: RunStore | None = None) -> str | None:
        """The cell's key now; None when it cannot be kept (a name unfit for a directory, a
        store without chunk checksums); as :meth:`keys` took it, where it did."""
        if cell in self._keys:
            return self._keys[cell]
        if not _SAFE_NAME.match(cell):
            return None
        if store is None:
            store = RunStore.open(self.run_dir, salvage=True)
            try:
                return self.key(cell, store)
            finally:
                store.close()
        data = store.cell_digest(cell)
        if data is None:
            return None
        described = json.dumps(
            [self._cells.get(cell, {}),
             [e.get("name") for e in self._experiments if cell in e.get("cells", ())]],
            sort_keys=True, default=str)
        digest = hashlib.blake2b(digest_size=16)
        for part in (code_key(), data, described):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()

    def keys(self, cells: list[str]) -> dict[str, str | None]:
        """:meth:`key` of each of ``cells``, the store opened once; kept, so that the cells'
        analyses (here or in processes forked after) do not take them again. The data must
        have stopped growing (a run that ended), or a later key would not be seen."""
        store = RunStore.open(self.run_dir, salvage=True)
        try:
            keys = {cell: self.key(cell, store) for cell in cells}
        finally:
            store.close()
        self._keys.update(keys)
        return keys

    def load(self, cell: str, key: str) -> CellPart | None:
        """The kept analysis of ``cell`` if it was made under ``key``, else None."""
        if not self.reuse:
            return None
        folder = self.dir / cell
        try:
            entry = json.loads((folder / _ENTRY).read_text(encoding="utf-8"))
            if entry.get("format") != FORMAT or entry.get("key") != key:
                return None
            names = [str(name) for _, _, name in entry["figures"]]
            if not all(_figure_name(key).match(name) for name in names):
                return None   # a figure kept under another key, or no figure of this cache
            derived = Derived(
                results=[Result(**r) for r in entry["results"]],
                notes=[str(n) for n in entry["notes"]],
                figures=[(str(section), str(caption), (folder / name).read_bytes())
                         for (section, caption, _), name in zip(entry["figures"], names,
                                                                 strict=True)])
            sigma = {(str(exp), str(owner)): [(float(t), float(s)) for t, s in points]
                     for exp, owner, points in entry["sigma"]}
            return CellPart(derived, sigma, [str(d) for d in entry["damage"]])
        except (OSError, ValueError, TypeError, KeyError, AttributeError, AnalysisError):
            return None   # none kept, or not whole: the cell is analysed again

    def save(self, cell: str, key: str, part: CellPart) -> None:
        """Keep ``part`` (its figures already PNG) under ``key``. A disk that refuses it costs
        only the keeping: the report is written all the same. The figures' file names carry
        the key: an entry never shows the figures of another key, even where two processes
        keep the same cell at once."""
        if not all(isinstance(png, bytes) for *_, png in part.derived.figures):
            return   # figures not drawn: nothing to keep
        folder = self.dir / cell
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):   # an entry of another key goes first
                (folder / _ENTRY).unlink()
            figures = []
            for k, (section, caption, png) in enumerate(part.derived.figures):
                name = f"figure{k:03d}-{key[:_KEY_IN_NAME]}.png"
                write_atomic(folder / name, png)   # type: ignore[arg-type]
                figures.append((section, caption, name))
            entry = {"format": FORMAT, "key": key, "cell": cell,
                     "results": [_result_fields(r) for r in part.derived.results],
                     "notes": part.derived.notes, "figures": figures,
                     "sigma": [[exp, owner, points]
                               for (exp, owner), points in part.sigma.items()],
                     "damage": part.damage}
            write_atomic(folder / _ENTRY, json.dumps(entry, allow_nan=False).encode())
            mine = {name for _, _, name in figures}
            for old in folder.glob("figure*.png"):   # the figures of earlier keys
                if old.name not in mine:
                    old.unlink(missing_ok=True)
            for left in folder.glob(".*.tmp"):   # of a process stopped while it wrote
                if not left.name.endswith(f".{os.getpid()}.tmp"):
                    left.unlink(missing_ok=True)
        except (OSError, TypeError, ValueError):   # a disk that refuses it; a value JSON has
            return                                   # no exact form for: not kept


def _figure_name(key: str) -> re.Pattern[str]:
    return re.compile(rf"^figure\d{{3}}-{re.escape(key[:_KEY_IN_NAME])}\.png$")


def _result_fields(r: Result) -> dict[str, Any]:
    return {"experiment": r.experiment, "cell": r.cell, "material": r.material,
            "quantity": r.quantity, "value": r.value, "unit": r.unit,
            "conditions": r.conditions, "note": r.note}
