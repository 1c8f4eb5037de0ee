"""docs/materials.md from the library itself, so the page cannot drift from the files.

    python -m materials.docs            # rewrite docs/materials.md
    python -m materials.docs --check    # exit 1 when the page differs from the library

The page's introduction (up to the first ``## `` heading) is kept as written; below it every
material, by kind, lists its sourced values with their citations and then its assumed values
with the reason no source gives them, as ``cellseq materials NAME`` does for one material.
"""

from __future__ import annotations

import sys
from pathlib import Path

from materials.library import Library, Material, builtin

PAGE = Path(__file__).resolve().parents[1] / "docs" / "materials.md"
KINDS = (("cathode", "Cathodes"), ("anode", "Anodes"), ("electrolyte", "Electrolytes"))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def material_section(m: Material) -> list[str]:
    rows, _, _ = m.provenance()
    n_src = sum(r.status == "sourced" for r in rows)
    lines = [f"**{m.name}** (`{m.path.name}`; {n_src} values sourced,"
             f" {len(rows) - n_src} assumed)", ""]
    for title, entries in (("Sourced", m.sources), ("Assumed", m.assumed_reasons)):
        lines.append(f"{title}:")
        lines.append("")
        lines += [f"- `{entry}`: {_one_line(text)}" for entry, text in entries.items()]
        if not entries:
            lines.append("- none")
        lines.append("")
    return lines


def body(library: Library) -> str:
    lines: list[str] = []
    for kind, title in KINDS:
        lines += [f"## {title}", ""]
        for m in library:
            if m.kind == kind:
                lines += material_section(m)
    return "\n".join(lines).rstrip("\n") + "\n"


def render(page: str, library: Library) -> str:
    head, sep, _ = page.partition("\n## ")
    if not sep:
        raise ValueError("docs/materials.md: no '## ' heading to put the library under")
    return head + "\n" + body(library)


def main(argv: list[str]) -> int:
    current = PAGE.read_text(encoding="utf-8")
    wanted = render(current, builtin())
    if "--check" in argv:
        if current != wanted:
            print(f"{PAGE.name} differs from the library: run python -m materials.docs",
                  file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
