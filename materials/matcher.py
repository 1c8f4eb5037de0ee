"""How names as labs write them become keys of the material library.

One matcher for everything that names a material (protocol validation, the simulated cells, the
analysis), so a name one of them accepts the others accept too. The rules, in order:

1. **Case, spaces and punctuation do not count**: ``c-LLZTO`` == ``cllzto`` == ``C LLZTO``.
2. **NCM and NMC are the same thing**: ``NCM811`` == ``NMC811`` == ``NMC-811`` == ``NMC (811)``.
3. **Electrolyte recipes are read as salt + solvents + additives**: concentrations (``1 M``,
   ``1.2 mol/L``), mixing ratios (``3:7``, ``(1:1 v/v)``) and additive amounts (``2 wt%``) are
   dropped, solvents are sorted, so ``1 M LiPF6 in EC:EMC 3:7 + 2 wt% VC`` and
   ``LiPF6 EMC/EC + VC`` both become ``lipf6|ec-emc|vc``. A material file declares the recipe
   it stands for with ``composition: {salt, solvents, additives}``.
4. Otherwise a name matches a file's ``name``, one of its ``aliases`` or its file stem, and,
   failing that, once more with remarks in parentheses dropped (``Li (10 um sheet)`` is Li).

Nothing here guesses: a name that matches no key is unknown, and :func:`closest` only offers
suggestions for the error message.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

#: Salts and solvents the recipe reader knows; anything else in a recipe makes it no recipe.
SALTS = ("lipf6", "litfsi", "lifsi", "libf4", "liclo4", "libob", "lidfob", "liasf6")
SOLVENTS = ("ec", "emc", "dec", "dmc", "pc", "fec", "dme", "dol", "vc", "gbl", "ema", "tegdme")
ADDITIVES = ("vc", "fec", "es", "ps", "lidfob", "libob", "lino3")

_CONCENTRATION = re.compile(r"\b\d+(?:\.\d+)?\s*(?:m|mol\s*/\s*l|mol\s*l-1|mol/kg|mol\s*dm-3)\b")
_AMOUNT = re.compile(r"\b\d+(?:\.\d+)?\s*(?:wt|vol|v|w|mol)?\s*%")
_RATIO = re.compile(r"\(?\b\d+(?:\.\d+)?(?:\s*:\s*\d+(?:\.\d+)?)+\b\s*(?:v/v|w/w|by\s+\w+)?\)?")
_WORDS = re.compile(r"[a-z0-9]+")


def key(name: str) -> str:
    """Rules 1 and 2: lower case, letters and digits only, ``ncm`` spelled ``nmc``."""
    return re.sub(r"[^0-9a-z]+", "", name.lower()).replace("ncm", "nmc")


def recipe_key(salt: str, solvents: Iterable[str], additives: Iterable[str] = ()) -> str:
    """The key of an electrolyte recipe (rule 3)."""
    solv = "-".join(sorted(key(s) for s in solvents))
    add = "-".join(sorted(key(a) for a in additives))
    return f"{key(salt)}|{solv}|{add}"


def parse_recipe(name: str) -> str | None:
    """Rule 3: the recipe key of a name such as ``1 M LiPF6 in EC:EMC 3:7 + 2 wt% VC``, or None
    when the name is not a salt-in-solvents recipe the reader understands."""
    text = name.lower().replace("\u00b7", " ")
    main, *extras = re.split(r"\+|\bwith\b", text)
    for pattern in (_CONCENTRATION, _AMOUNT, _RATIO):
        main = pattern.sub(" ", main)
    words = [w for w in _WORDS.findall(main) if w not in ("in", "and", "of", "m")]
    salts = [w for w in words if w in SALTS]
    solvents = [w for w in words if w in SOLVENTS]
    if len(salts) != 1 or not solvents or len(salts) + len(solvents) != len(words):
        return None
    additives: list[str] = []
    for extra in extras:
        for pattern in (_AMOUNT, _CONCENTRATION):
            extra = pattern.sub(" ", extra)
        found = [w for w in _WORDS.findall(extra) if w not in ("and", "wt", "vol")]
        if not found or any(w not in ADDITIVES for w in found):
            return None
        additives.extend(found)
    return recipe_key(salts[0], solvents, additives)


def lookup_keys(name: str) -> list[str]:
    """Every key under which ``name`` may be found, most specific first."""
    keys = [key(name)]
    recipe = parse_recipe(name)
    if recipe is not None:
        keys.insert(0, recipe)
    bare = re.sub(r"\([^()]*\)", " ", name).strip()
    if bare and bare != name.strip():
        keys.append(key(bare))
    return keys


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` known names that look like ``name`` (for the message that refuses it)."""
    names = sorted(set(candidates))
    by_key: dict[str, str] = {}
    for c in names:
        by_key.setdefault(key(c), c)
    hits = difflib.get_close_matches(key(name), list(by_key), n=n, cutoff=0.5)
    found = [by_key[h] for h in hits]
    if len(found) < n:
        found += [c for c in difflib.get_close_matches(name, names, n=n, cutoff=0.4)
                  if c not in found]
    return found[:n]


__all__ = ["closest", "key", "lookup_keys", "parse_recipe", "recipe_key"]
