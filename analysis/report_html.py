"""Write a run's report: ``summary.json`` (the derived-results contract) and ``index.html``.

Pure rendering: the caller brings the results, the figures and the expected values; nothing
here reads the run store or decides which analysis applies.

Decisions:

- Figures are saved as PNG files under ``report_dir/figures/`` and referenced by relative path,
  so the report directory is self-contained (no network, no scripts) and each figure can be
  dropped into slides or a paper as it is. ``embed_figures=True`` puts them into ``index.html``
  as base64 instead, for a single file to mail around. Figures are consumed: each is cleared
  (and closed in pyplot, if pyplot made it) once saved, even when a later one fails.
- Every piece of text in the HTML passes through :func:`html.escape`: cell names, captions and
  metadata come from user files.
- Both files are written to a temporary name and renamed, so a crash never leaves half a file.
- Expected values: an ``expected`` record has the result keys that identify a measurement
  (``experiment``, ``quantity``, ``unit``, optionally ``cell``, ``material``, ``conditions``), the
  expected number as ``value`` (or ``expected``), and optionally ``tolerance``, a relative one
  (0.1 = 10 %, default :data:`DEFAULT_RELATIVE_TOLERANCE`), and ``abs_tolerance`` in the unit.
  A result matches when every identifying key the record gives is equal and its conditions
  include the record's conditions (numbers compared to 1e-9 relative). Units are compared
  through pint: the measured value is expressed in the expectation's unit (``cm^2/s`` and
  ``cm2/s`` are one unit, ``A/m^2`` takes ``mA/cm2`` times 10). Each match is one row; an
  expectation that matches nothing is a failing "not measured" row (so is a match whose value
  is null, with its note), and one that matches except for the unit's dimension says so.
  ``summary.json`` gets the same rows as ``checks``.
- How the run ended (``outcome``: its status, each cell's final state and fault, what was not
  derived because of them) opens the page as a banner whenever the run did not simply complete,
  and goes to ``summary.json`` as ``run``. Notes (analyses that could not be made, numbers left
  out as impossible) are listed where they are seen, under the banner.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
import numbers
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from analysis.errors import AnalysisError
from analysis.render import FIGURE_DPI, render_png
from analysis.results import DEFAULT_RELATIVE_TOLERANCE, Result
from core.atomic_write import write_atomic
from core.text import plural
from protocols.units import UnitError, convert

if TYPE_CHECKING:   # matplotlib to write figures: not to compare results with expected values
    from matplotlib.figure import Figure

#: Resolution of the saved PNGs (a 6.4 in wide panel is about 770 px).

_IDENTITY_KEYS = ("experiment", "cell", "material", "quantity")
_RESERVED_KEYS = ("campaign", "results", "checks", "run", "notes")
_FIGURE_NAME = re.compile(r"^fig\d{3}-[a-z0-9-]*\.png$")
#: summary.json's encoding: indented, a final newline; dataclasses and datetimes are left to
#: :func:`_jsonable` (orjson would write them its own way)
_ORJSON_OPTIONS = (orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
                   | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME)


@dataclass(frozen=True)
class Check:
    """One expected-vs-measured row."""

    expected: dict[str, Any]
    expected_value: float
    tolerance: float
    abs_tolerance: float | None
    measured: Result | None
    status: str  # "pass", "fail", "not measured", "unit mismatch"
    #: the measured value in the expectation's unit (None: nothing measured, or null)
    measured_value: float | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def relative_difference(self) -> float | None:
        if self.measured_value is None or self.expected_value == 0:
            return None
        return (self.measured_value - self.expected_value) / abs(self.expected_value)

    def to_dict(self) -> dict[str, Any]:
        m = self.measured
        out = {
            "experiment": self.expected.get("experiment"),
            "cell": m.cell if m else self.expected.get("cell"),
            "material": m.material if m else self.expected.get("material"),
            "quantity": self.expected.get("quantity"),
            "unit": self.expected.get("unit"),
            "conditions": dict(m.conditions) if m else dict(self.expected.get("conditions") or {}),
            "expected": self.expected_value,
            "measured": self.measured_value,
            "measured_unit": self.expected.get("unit") if self.measured_value is not None
            else None,
            "relative_difference": self.relative_difference,
            "tolerance": self.tolerance,
            "abs_tolerance": self.abs_tolerance,
            "status": self.status,
        }
        if m is not None and m.value is not None and m.unit != self.expected.get("unit"):
            out["measured_as_derived"] = {"value": m.value, "unit": m.unit}
        if m is not None and m.note:
            out["note"] = m.note
        return out


def write_report(
    report_dir: Path,
    title: str,
    results: Sequence[Result],
    figures: Sequence[tuple[str, str, Figure]],
    expected: Sequence[Mapping[str, Any]] | None = None,
    meta: Mapping[str, Any] | None = None,
    *,
    embed_figures: bool = False,
    outcome: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``index.html`` into ``report_dir``; return their paths.

    ``figures`` are ``(section, caption, figure)``; sections appear in order of first use.
    ``summary.json`` is ``{"campaign": title, "run": outcome, "results": [...], "checks": [...],
    "notes": [...], **meta}`` (``run`` only with an ``outcome``, ``checks`` only when
    ``expected`` is given); ``meta`` may not reuse those keys, and its values are made
    JSON-safe (numpy numbers, paths, datetimes; NaN and inf become null). ``outcome`` is how
    the run ended (:func:`analysis.outcome.run_outcome`): a run that did not simply complete
    opens the page with a banner saying so.
    """
    meta = dict(meta or {})
    clash = sorted(set(meta) & set(_RESERVED_KEYS))
    if clash:
        raise AnalysisError(f"meta may not set the report's own keys {clash}")
    results = list(results)
    for k, r in enumerate(results):
        if not isinstance(r, Result):
            _close_all(figures)
            raise AnalysisError(f"results[{k}] must be a Result, got {type(r).__name__}")
    try:
        checks = compare(results, expected) if expected is not None else None
    except AnalysisError:
        _close_all(figures)
        raise

    report_dir = Path(report_dir)
    figure_dir = report_dir / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    images = _save_figures(figures, figure_dir, embed_figures)

    summary: dict[str, Any] = {"campaign": title}
    if outcome is not None:
        summary["run"] = dict(outcome)
    summary["results"] = [r.to_dict() for r in results]
    if checks is not None:
        summary["checks"] = [c.to_dict() for c in checks]
    summary["notes"] = list(notes)
    summary.update(meta)
    summary_path = report_dir / "summary.json"
    _write_json_atomic(summary_path, summary)
    del summary   # a long run has tens of thousands of records

    index_path = report_dir / "index.html"
    write_atomic(index_path, _render(title, results, images, checks, meta, outcome,
                                     list(notes)).encode("utf-8"))
    return summary_path, index_path


def compare(results: Sequence[Result], expected: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Expected-vs-measured rows, in the order of ``expected`` (see the module docstring)."""
    checks: list[Check] = []
    # every record names its experiment and quantity: only those results are candidates
    by_kind: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        by_kind.setdefault((r.experiment, r.quantity), []).append(r)
    for k, record in enumerate(expected):
        record = dict(record)
        value, tol, abs_tol = _expectation(record, k)
        candidates = [r for r in by_kind.get((record["experiment"], record["quantity"]), [])
                      if _matches(record, r)]
        matched = [r for r in candidates if _comparable(r.unit, record["unit"])]
        if not matched:
            status = "unit mismatch" if candidates else "not measured"
            checks.append(Check(record, value, tol, abs_tol, None, status))
            continue
        for r in matched:
            if r.value is None:   # measured, but no physical number came of it: the note says
                checks.append(Check(record, value, tol, abs_tol, r, "not measured"))
                continue
            measured = r.value if r.unit == record["unit"] else \
                convert(r.value, r.unit, record["unit"])
            diff = abs(measured - value)
            ok = diff <= tol * abs(value) or (abs_tol is not None and diff <= abs_tol)
            checks.append(Check(record, value, tol, abs_tol, r, "pass" if ok else "fail",
                                measured))
    return checks


def _comparable(unit: str, expected_unit: str) -> bool:
    """Whether a result in ``unit`` can be expressed in ``expected_unit`` (pint decides)."""
    if unit == expected_unit:
        return True
    try:
        convert(1.0, unit, expected_unit)
    except UnitError:
        return False
    return True


# --------------------------------------------------------------------------- expected values


def _expectation(record: dict[str, Any], k: int) -> tuple[float, float, float | None]:
    for key in ("experiment", "quantity", "unit"):
        if not isinstance(record.get(key), str):
            raise AnalysisError(f"expected[{k}] needs a string {key!r}, got {record.get(key)!r}")
    if "expected" in record and "value" in record:
        raise AnalysisError(f"expected[{k}] gives both 'value' and 'expected'; give one")
    value = _finite_number(record.get("expected", record.get("value")), f"expected[{k}] value")
    tol = _finite_number(record.get("tolerance", DEFAULT_RELATIVE_TOLERANCE),
                         f"expected[{k}] tolerance")
    abs_tol = record.get("abs_tolerance")
    if abs_tol is not None:
        abs_tol = _finite_number(abs_tol, f"expected[{k}] abs_tolerance")
    if tol < 0 or (abs_tol is not None and abs_tol < 0):
        raise AnalysisError(f"expected[{k}] tolerances must not be negative")
    conditions = record.get("conditions") or {}
    if not isinstance(conditions, Mapping):
        raise AnalysisError(f"expected[{k}] conditions must be a mapping, got {conditions!r}")
    return value, tol, abs_tol


def _finite_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AnalysisError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise AnalysisError(f"{name} must be finite, got {value!r}")
    return float(value)


def _matches(record: Mapping[str, Any], result: Result) -> bool:
    """Same identity (keys the record leaves out or sets to None match anything), conditions a
    superset of the record's; the unit is compared by the caller."""
    for key in _IDENTITY_KEYS:
        if record.get(key) is not None and record[key] != getattr(result, key):
            return False
    conditions = record.get("conditions") or {}
    return all(
        key in result.conditions and _same(want, result.conditions[key])
        for key, want in conditions.items()
    )


def _same(a: Any, b: Any) -> bool:
    numeric = (
        isinstance(a, numbers.Real) and isinstance(b, numbers.Real)
        and not isinstance(a, bool) and not isinstance(b, bool)
    )
    if numeric:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class _Image:
    section: str
    caption: str
    src: str  # relative URL or data: URL


def _save_figures(
    figures: Sequence[tuple[str, str, Figure]], figure_dir: Path, embed: bool
) -> list[_Image]:
    from matplotlib.figure import Figure

    for old in figure_dir.iterdir():  # stale figures of an earlier report of this run
        if _FIGURE_NAME.match(old.name):
            old.unlink()
    images: list[_Image] = []
    try:
        for k, (_, _, fig) in enumerate(figures, start=1):
            if not isinstance(fig, Figure | bytes):
                raise AnalysisError(f"figures[{k - 1}] must hold a matplotlib Figure (or"
                                    " its PNG)")
        drawn = iter(render_png([f for *_, f in figures if isinstance(f, Figure)],
                                FIGURE_DPI))
        pngs = [f if isinstance(f, bytes) else next(drawn) for *_, f in figures]
        for k, ((section, caption, fig), png) in enumerate(zip(figures, pngs, strict=True),
                                                           start=1):
            if embed:
                src = "data:image/png;base64," + base64.b64encode(png).decode()
            else:
                name = f"fig{k:03d}-{_slug(section)}.png"
                (figure_dir / name).write_bytes(png)
                src = f"figures/{name}"
            images.append(_Image(str(section), str(caption), src))
            _close(fig)
    finally:
        _close_all(figures)
    return images


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40]


def _close(fig: Any) -> None:
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        return
    pyplot = sys.modules.get("matplotlib.pyplot")  # only if someone else imported it
    if pyplot is not None:
        pyplot.close(fig)
    fig.clear()


def _close_all(figures: Sequence[tuple[str, str, Figure]]) -> None:
    for entry in figures:
        _close(entry[-1] if isinstance(entry, tuple) and entry else None)


# --------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.pass td.status { color: #17692b; font-weight: bold; }
tr.fail td.status { color: #b00020; font-weight: bold; }
figure { display: inline-block; margin: 0 1em 1.5em 0; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 48em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.meta dt { font-weight: bold; } dl.meta dd { margin: 0; }
div.banner { border: 2px solid #b00020; background: #fdecef; padding: 0.5em 1em; margin: 1em 0; }
div.banner h2 { color: #b00020; border: none; margin-top: 0.3em; }
p.outcome.ok { color: #17692b; font-weight: bold; }
div.notes { border-left: 4px solid #c77c00; padding-left: 1em; }
""".strip()


def _render(
    title: str,
    results: list[Result],
    images: list[_Image],
    checks: list[Check] | None,
    meta: Mapping[str, Any],
    outcome: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> str:
    e = _esc
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        f"<style>\n{_CSS}\n</style></head>",
        "<body>",
        f"<h1>{e(title)}</h1>",
    ]
    if outcome is not None:
        out += _outcome_html(outcome, checks)
    if notes:
        out += _notes_html(notes)
    if meta:
        out.append('<dl class="meta">')
        for key, value in meta.items():
            out.append(f"<dt>{e(key)}</dt><dd>{e(_meta_text(value))}</dd>")
        out.append("</dl>")
    if checks is not None:
        out += _checks_html(checks)
    out += _results_html(results)
    out += _figures_html(images)
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def _outcome_html(outcome: Mapping[str, Any], checks: list[Check] | None) -> list[str]:
    """How the run ended: one line when it completed; otherwise a banner naming every cell that
    did not complete, why, and what was not derived because of it."""
    e = _esc
    status = str(outcome.get("status"))
    cells = list(outcome.get("cells") or [])
    if status == "completed":
        every = "the cell" if len(cells) == 1 else f"all {len(cells)} cells"
        return [f'<p class="outcome ok">Run completed: {every} completed.</p>']
    lost = [c for c in cells if c.get("state") != "completed"]
    out = ['<div class="outcome banner" role="alert">',
           f"<h2>Run {e(status.replace('_', ' '))}: {len(lost)} of {len(cells)}"
           f" {plural(len(cells), 'cell')} did not complete</h2>", "<ul>"]
    for c in lost:
        where = f" in {c['experiment']}" if c.get("experiment") else ""
        why = f": {c['fault']}" if c.get("fault") else ""
        out.append(f"<li><strong>{e(c['cell'])}</strong> {e(c.get('state'))}{e(where)}"
                   f"{e(why)}</li>")
    out.append("</ul>")
    missing = list(outcome.get("not_derived") or [])
    unmeasured = [c for c in checks or [] if c.status == "not measured"
                  and (c.expected.get("cell") in {x["cell"] for x in lost}
                       or c.expected.get("cell") is None)]
    if missing or unmeasured:
        out += ["<p>Not derived because of it:</p>", "<ul>"]
        for m in missing:
            out.append(f"<li>{e(m['experiment'])} on {e(m['cell'])}: {e(m['reason'])}</li>")
        for c in unmeasured:
            row = c.to_dict()
            out.append(f"<li>expected {e(row['quantity'])} of {e(row['experiment'])}"
                       f"{' on ' + e(row['cell']) if row['cell'] else ''}"
                       f" ({e(_number(c.expected_value))} {e(row['unit'])}): not measured</li>")
        out.append("</ul>")
    out.append("</div>")
    return out


def _notes_html(notes: Sequence[str]) -> list[str]:
    e = _esc
    return ['<div class="notes"><h2 id="notes">Notes</h2>', "<ul>",
            *(f"<li>{e(note)}</li>" for note in notes), "</ul></div>"]


def _checks_html(checks: list[Check]) -> list[str]:
    e = _esc
    passed = sum(c.passed for c in checks)
    out = [
        '<h2 id="checks">Expected vs measured</h2>',
        f"<p>{passed} of {len(checks)} within tolerance "
        f"(default ±{DEFAULT_RELATIVE_TOLERANCE:.0%} where none is given).</p>",
        "<table><thead><tr><th>experiment</th><th>cell</th><th>quantity</th><th>conditions</th>"
        "<th>measured</th><th>expected</th><th>unit</th><th>difference</th><th>tolerance</th>"
        "<th>result</th></tr></thead><tbody>",
    ]
    for c in checks:
        row = c.to_dict()
        measured = "—" if c.measured_value is None else _number(c.measured_value)
        rel = c.relative_difference
        diff = "—" if rel is None else f"{rel:+.1%}"
        tol = f"±{c.tolerance:.1%}"
        if c.abs_tolerance is not None:
            tol += f" or ±{_number(c.abs_tolerance)}"
        mark = "✓ pass" if c.passed else f"✗ {c.status}"
        out.append(
            f'<tr class="{"pass" if c.passed else "fail"}">'
            f"<td>{e(row['experiment'])}</td><td>{e(row['cell'] or '')}</td>"
            f"<td>{e(row['quantity'])}</td><td>{e(_conditions(row['conditions']))}</td>"
            f'<td class="num">{e(measured)}</td><td class="num">{e(_number(c.expected_value))}</td>'
            f"<td>{e(row['unit'])}</td><td class=\"num\">{e(diff)}</td>"
            f'<td class="num">{e(tol)}</td><td class="status">{e(mark)}</td></tr>'
        )
    out.append("</tbody></table>")
    return out


def _results_html(results: list[Result]) -> list[str]:
    e = _esc
    out = ['<h2 id="results">Results</h2>']
    if not results:
        return [*out, "<p>No derived results.</p>"]
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r.experiment, []).append(r)
    for experiment, rows in groups.items():
        out += [
            f"<h3>{e(experiment)}</h3>",
            "<table><thead><tr><th>cell</th><th>material</th><th>quantity</th><th>value</th>"
            "<th>unit</th><th>conditions</th></tr></thead><tbody>",
        ]
        for r in rows:
            value = "null" if r.value is None else _number(r.value)
            conditions = _conditions(r.conditions) + (f" ({r.note})" if r.note else "")
            out.append(
                f"<tr><td>{e(r.cell)}</td><td>{e(r.material)}</td><td>{e(r.quantity)}</td>"
                f'<td class="num">{e(value)}</td><td>{e(r.unit)}</td>'
                f"<td>{e(conditions)}</td></tr>"
            )
        out.append("</tbody></table>")
    return out


def _figures_html(images: list[_Image]) -> list[str]:
    e = _esc
    if not images:
        return []
    out = ['<h2 id="figures">Figures</h2>']
    sections: dict[str, list[_Image]] = {}
    for image in images:
        sections.setdefault(image.section, []).append(image)
    for section, members in sections.items():
        out.append(f"<h3>{e(section)}</h3>")
        for image in members:
            out.append(
                f'<figure><img src="{e(image.src)}" alt="{e(image.caption)}">'
                f"<figcaption>{e(image.caption)}</figcaption></figure>"
            )
    return out


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _conditions(conditions: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} = {_condition_value(v)}" for key, v in conditions.items())


def _condition_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _meta_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(_jsonable(value), ensure_ascii=False)


# --------------------------------------------------------------------------- JSON and files


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays, tuples, paths and datetimes converted; NaN
    and inf become None (JSON has neither). The plain types are told by their exact type first:
    a long run's summary has hundreds of thousands of values, and asking the abstract number
    classes of each is most of this function's time."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {k if type(k) is str else str(k): _jsonable(v) for k, v in value.items()}
    if kind is list:
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and numpy bools
        return _jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise AnalysisError(f"cannot write {type(value).__name__} {value!r} to summary.json")


def _write_json_atomic(path: Path, value: Any) -> None:
    """``value`` as JSON, indented by two spaces, non-ASCII text as UTF-8, and a newline; what
    is no plain JSON type made one by :func:`_jsonable` (NaN and inf are null). Encoded by
    orjson, in C (the standard library's encoder indents in Python: a few tenths of a second
    for a campaign's summary), straight from ``value``: no plain copy of a long run's records
    is made beside them, only the encoded text, which is smaller. What orjson refuses though
    JSON allows it (keys that are no strings, an integer wider than 64 bits such as a large
    seed, text with a lone surrogate) is converted and encoded by the standard library
    instead, to the same JSON values."""
    try:
        encoded = orjson.dumps(value, default=_jsonable, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, AnalysisError):   # a value no JSON can hold
            raise exc.__cause__ from None
        encoded = (json.dumps(_jsonable(value), indent=2, allow_nan=False) + "\n"
                   ).encode("ascii")
    write_atomic(path, encoded)

