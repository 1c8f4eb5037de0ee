"""The ``cellseq`` command line. A user error exits 2 with a message and no traceback."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from core.text import counted
from drivers.errors import CellseqError
from sequencer import IMPORTED_AT
from sequencer.breakable import Breakable

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator
    from contextlib import AbstractContextManager

    from analysis.while_running import AnalysisBeside
    from sequencer.dashboard.source import RunSource
    from sequencer.plan import Plan
    from sequencer.runner import RunOutcome

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Validate, plan, run and analyse electrochemistry test campaigns.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

USER_ERROR = 2
#: ``run`` and ``resume``: a cell faulted (and, with --check, this wins over CHECK_FAILED: a
#: faulted cell's expected values are misses because of the fault).
CELL_FAULTED = 1
#: ``run --check``: an expected value was missed (failed, not measured, or in a unit that is
#: not the quantity's), and no cell faulted.
CHECK_FAILED = 3
#: When the command started, for the wall time it prints: loading, running and reporting.
#: Run as ``cellseq`` (:func:`main`), from when the process began to load cellseq; invoked in
#: a process that was already running (tests), from when the command was called.
_started_at = IMPORTED_AT
_via_main = False


@app.callback()
def _begin() -> None:
    global _started_at
    if not _via_main:
        _started_at = time.perf_counter()


def _fail(message: str) -> NoReturn:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(USER_ERROR)


def _user_errors(exc: CellseqError) -> NoReturn:
    _fail(str(exc))


def _file_path(text: str) -> Path:
    """A file named on the command line. A trailing separator names a folder, and pathlib
    would silently drop it, so it is refused here."""
    if text.endswith(("/", os.sep)):
        _fail(f"{text}: ends with a path separator; name the file itself")
    return Path(text)


ProtocolArg = Annotated[Path, typer.Argument(help="Protocol file (YAML).", show_default=False,
                                             parser=_file_path)]
OutsideIncludesOpt = Annotated[bool, typer.Option(
    "--allow-outside-includes",
    help="Let the protocol include files outside its own folder (absolute paths, ../).")]
RunDirArg = Annotated[Path, typer.Argument(help="Run directory.", show_default=False)]


@app.command()
def validate(protocol: ProtocolArg, allow_outside_includes: OutsideIncludesOpt = False) -> None:
    """Check a protocol file: schema, units, references, and the plan on a simulated station."""
    from sequencer.plan import prepare

    try:
        checked = prepare(protocol, allow_outside_includes=allow_outside_includes)
    except CellseqError as exc:
        _user_errors(exc)
    _warnings(checked)
    c = checked.campaign
    out.print(f"{protocol}: valid: campaign {c.campaign!r}, {counted(len(c.cells), 'cell')},"
              f" {counted(len(c.experiments), 'experiment')}")


StationOpt = Annotated[Path | None, typer.Option(
    "--station", help="Station file: instruments, channels and chambers of the cells.",
    parser=_file_path)]


@app.command()
def plan(
    protocol: ProtocolArg,
    station: StationOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    allow_outside_includes: OutsideIncludesOpt = False,
) -> None:
    """When each experiment starts and ends, given the station's resources."""
    from sequencer.plan import prepare

    try:
        p = prepare(protocol, station, allow_outside_includes=allow_outside_includes)
    except CellseqError as exc:
        _user_errors(exc)
    _warnings(p)
    if as_json:
        out.print_json(json.dumps(p.to_json()))
        return
    # names wrap after their hyphens rather than being cut (an 80-column terminal showed
    # "characte…") or folded mid-word ("interfacial-im" / "pedance"); hours never
    table = Table(title=f"{p.campaign.campaign}: plan on station {p.station.station!r}",
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    for name in ("experiment", "cells", "resources"):
        table.add_column(name, overflow="fold")
    for name in ("start\n(h)", "end\n(h)", "duration\n(h)", "at most\n(h)"):
        table.add_column(name, justify="right", no_wrap=True)
    for e in p.experiments:
        table.add_row(Breakable(e.name), Breakable(", ".join(e.cells)),
                      Breakable(", ".join(e.resources)),
                      f"{e.start_s / 3600:.1f}", f"{e.end_s / 3600:.1f}",
                      f"{e.estimate_s / 3600:.1f}", f"{e.bound_s / 3600:.1f}")
    out.print(table)
    out.print(f"makespan {p.makespan_s / 3600:.1f} h ({p.makespan_s / 86400:.1f} days),"
              f" at most {p.makespan_bound_s / 3600:.1f} h: titrations taken at what the"
              " capacity holds, every other loop counted in full; 'at most' runs every loop"
              " to its count, every step to its time limit and every soak to its timeout",
              soft_wrap=False)   # wrapped at words, to the terminal's width
    _chambers(p)
    _branches(p)
    _notes(p.notes)


def _chambers(p: Plan) -> None:
    """Which experiments share a chamber, and why others in one queue (wrapped for an
    80-column terminal)."""
    import textwrap

    def say(first: str, then: str) -> None:
        for line in [*textwrap.wrap(first, 78), *textwrap.wrap(then, 78, initial_indent="  ",
                                                                 subsequent_indent="  ")]:
            out.print(line, highlight=False, markup=False)

    for e in p.experiments:
        if e.sharing and e.sharing[0] == e.index:
            say(f"{e.chamber} shared by " + ", ".join(p.experiments[i].name for i in e.sharing)
                + ":", "temperature schedules agree: they start together, one soak for all")
        for wait in e.waits:
            after, why = wait.split(": ", 1)
            if not why.startswith("shares "):
                say(f"{e.name} queued {after}:", why)


def _branches(p: Plan) -> None:
    """Each experiment's branches and their bounds, what each retention loop watches, and
    which measured capacity each C-rate reference takes."""
    from sequencer.capacity_basis import describe_references
    from sequencer.plan import watches_of

    for e in p.experiments:
        lines = ([b.describe() for b in e.branches] + watches_of(e)
                 + describe_references(e.references))
        if not lines:
            continue
        out.print(f"{e.name}:", highlight=False)
        if e.branches:
            out.print("  branches: the estimate takes none, 'at most' every jump back"
                      " to its bound", highlight=False)
        for line in lines:
            out.print(f"  {line}", highlight=False)


def _warnings(p: Plan) -> None:
    """The plan's warnings (steps a safety limit will stop), one line each, on stderr."""
    from rich.markup import escape

    for warning in p.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(str(warning))}", markup=True,
                  soft_wrap=True)


def _notes(notes: tuple[str, ...]) -> None:
    for note in notes:
        err.print(f"[yellow]note:[/] {note}", markup=True, soft_wrap=True)


@app.command()
def run(
    protocol: ProtocolArg,
    sim: Annotated[bool, typer.Option("--sim", help="Dry run on simulated instruments.")] = False,
    station: StationOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulators' noise.", min=0)] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", help="New run directory.")] = None,
    report: Annotated[bool, typer.Option(help="Write the report when the run ends.")] = True,
    check: Annotated[bool, typer.Option(
        "--check", help="Compare the results with the protocol's expected values: exit 3 if"
        " any is missed (each miss printed), 1 if a cell faulted, 0 if all holds.")] = False,
    allow_outside_includes: OutsideIncludesOpt = False,
    speed: Annotated[float | None, typer.Option(
        "--speed", help="With --sim: run the simulated lab this many simulated seconds per"
        " wall second instead of as fast as it can (to watch it live, e.g. on the"
        " dashboard).", min=1e-3, max=1e6, show_default=False)] = None,
) -> None:
    """Run a protocol; with --sim on simulators in virtual time.

    Exit codes: 0 done, every cell completed (and with --check every expected value met);
    1 a cell faulted; 2 bad input; 3 (--check) an expected value missed; 130 Ctrl-C. A faulted
    cell wins over missed values (1, the misses still printed)."""
    from sequencer.runner import run_simulated

    if not sim and station is None:
        _fail("no station given: use --sim for a dry run on simulators, or --station FILE")
    if speed is not None and not sim:
        _fail("--speed paces a dry run: use it with --sim (a served lab's speed is set by"
              " `cellseq sim serve --speed`)")
    if out_dir is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out_dir = Path("runs") / f"{protocol.stem}-{stamp}"
    from sequencer.progress import TerminalProgress

    bars = TerminalProgress(err) if err.is_terminal else None   # quiet when not a terminal
    warned: list[str] = []

    def before_the_run(p: Plan) -> None:   # the plan's notes and warnings, before a long run
        if station is not None:
            _notes(p.notes)
        _warnings(p)
        # the summary's notes repeat them, prefixed (analysis.derive): said once is enough
        warned.extend(f"warning: {w}" for w in p.warnings)

    with _analysis_beside(out_dir, report) as beside:
        with _run_stopped_said(out_dir):
            outcome = run_simulated(protocol, out_dir, seed, station, bars,
                                    allow_outside_includes=allow_outside_includes,
                                    speed=speed, on_plan=before_the_run)
        _finish_run(outcome, report, check, said=warned, beside=beside)


@contextlib.contextmanager
def _run_stopped_said(run_dir: Path) -> Iterator[None]:
    """A run that a user error stops exits 2 naming it; one that Ctrl-C stops exits 130,
    saying how to resume it."""
    try:
        yield
    except CellseqError as exc:
        _user_errors(exc)
    except KeyboardInterrupt:
        err.print(f"interrupted; every output is off. Resume with: cellseq resume {run_dir}")
        raise typer.Exit(130) from None


def _analysis_beside(run_dir: Path, report: bool
                     ) -> AbstractContextManager[AnalysisBeside | None]:
    """While the run goes on, its finished cells analysed beside it for the report at its
    end (:mod:`analysis.while_running`; stopped, if still going, when the context ends);
    nothing without a report."""
    if not report:
        return contextlib.nullcontext()
    from analysis.while_running import AnalysisBeside

    return AnalysisBeside(run_dir)


def _finish_run(outcome: RunOutcome, report: bool, check: bool = False,
                said: Collection[str] = (), beside: AnalysisBeside | None = None) -> None:
    """Print how the run ended (from the same record the report writes), write the report,
    and exit with the code the run earned; ``said``: notes printed already, before the run;
    ``beside``: what analyses the run's cells beside it: told at once that the run has
    ended (it finishes the cell it is on while this process loads the report's modules),
    then waited for by the report before it reads what was kept."""
    if beside is not None:
        beside.run_ended()
    from analysis.errors import AnalysisError
    from sequencer.status import run_status
    from sequencer.summary import misses, print_summary

    index = reuse = None
    try:
        if report:
            from analysis.report import make_report  # matplotlib: only with a report

            made = make_report(outcome.run_dir,
                               settle=beside.finish if beside is not None else None)
            index, reuse = made.index, made.reuse_line(during_run=True)
            summary = json.loads(made.summary.read_text(encoding="utf-8"))
        else:
            from analysis.summary_record import summary_of

            summary = summary_of(outcome.run_dir)
    except (CellseqError, AnalysisError) as exc:
        _fail(f"the run ended ({outcome.status}; {outcome.run_dir}), but its report was not"
              f" made: {exc}")
    print_summary(out, run_status(outcome.run_dir), summary, said)
    missed = misses(summary) if check else []
    for line in missed:
        err.print(f"[bold red]missed:[/] {line}", markup=True, soft_wrap=True)
    if check and "checks" not in summary:
        err.print("--check: the protocol declares no expected values; nothing to compare")
    elif check and not missed:
        out.print(f"every expected value met ({len(summary['checks'])} checks)")
    if index is not None:
        out.print(f"report: {index}")
    if reuse is not None:
        out.print(reuse)
    out.print(f"run directory: {outcome.run_dir}")
    out.print(f"wall time {time.perf_counter() - _started_at:.2f} s (the run itself"
              f" {outcome.wall_s:.2f} s)")
    if outcome.faulted:
        err.print(f"run {outcome.status}: cells that faulted: {', '.join(outcome.faulted)}"
                  f" (see {outcome.run_dir / 'run.log'})")
        raise typer.Exit(CELL_FAULTED)
    if missed:
        err.print(f"--check: {len(missed)} of {len(summary['checks'])} expected values missed")
        raise typer.Exit(CHECK_FAILED)


@app.command()
def resume(
    run_dir: RunDirArg,
    station: Annotated[Path | None, typer.Option(
        "--station", help="The run's station file again, for passwords a run never stores.")
    ] = None,
    report: Annotated[bool, typer.Option(help="Write the report when the run ends.")] = True,
    check: Annotated[bool, typer.Option(
        "--check", help="As for run: exit 3 if an expected value is missed.")] = False,
) -> None:
    """Continue a run that a crash, a power cut or Ctrl-C stopped, where its data ends.
    Exit codes as for ``run``."""
    from sequencer.progress import TerminalProgress
    from sequencer.runner import resume_run

    bars = TerminalProgress(err) if err.is_terminal else None
    with _analysis_beside(run_dir, report) as beside:
        with _run_stopped_said(run_dir):
            outcome = resume_run(run_dir, bars, station=station)
        _finish_run(outcome, report, check, beside=beside)


@app.command()
def status(
    run_dir: RunDirArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each cell's state, step, cycle and last values."""
    from sequencer.status import run_status

    try:
        st = run_status(run_dir)
    except CellseqError as exc:
        _user_errors(exc)
    if as_json:
        out.print_json(json.dumps(st))
        return
    origin = "imported" if st["mode"] == "imported" else f"{st['mode']}, seed {st['seed']}"
    out.print(f"run {st['run_dir']}: campaign {st['campaign']}, {origin},"
              f" status [bold]{st['status']}[/]")
    out.print(_status_table(st))
    for c in st["cells"]:
        if c["fault"]:
            out.print(f"[bold red]faulted:[/] {c['cell']}: {c['fault']}")
    for note in st.get("notes", []):
        err.print(f"note: {note}")
    if st["status"] in ("interrupted", "aborted"):
        out.print(f"the run stopped before its end; continue it with: cellseq resume {run_dir}")


def _status_table(st: dict) -> Table:
    """Each cell's row, readable at 80 columns: ids and experiments wrap after their hyphens
    rather than being cut (two ids that differ only at the end stay two), step kinds wrap
    between words, states and numbers never wrap."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    table.add_column("cell", overflow="fold")
    table.add_column("state", no_wrap=True, min_width=len("interrupted"))
    table.add_column("experiment", overflow="fold", min_width=len("experiment"))
    table.add_column("step", overflow="fold")
    table.add_column("loop\ncycle", justify="right", no_wrap=True)   # not the results' cycle
    table.add_column("points", justify="right", no_wrap=True)
    table.add_column("last", justify="right", no_wrap=True)
    for c in st["cells"]:
        last = c["last"] or {}
        step = "-" if c["step"] is None else \
            f"{c['step']} {(c['step_kind'] or '').replace('_', ' ')}".strip()
        values = [f"{last['voltage_V']:.4f} V" if "voltage_V" in last else "",
                  f"{last['current_A'] * 1e3:.4g} mA" if "current_A" in last else ""]
        table.add_row(Breakable(c["cell"]), c["state"], Breakable(str(c["experiment"] or "-")),
                      step, str(c["cycle"]), str(c["points"]),
                      "\n".join(v for v in values if v) or "-")
    return table


LabDbOpt = Annotated[str | None, typer.Option(
    "--db", help="Read run RUN_ID from this lab database (see cellseq lab); it is rebuilt"
    " into a local run directory first.", show_default=False)]
LabNameOpt = Annotated[str | None, typer.Option(
    "--lab", help="With --db (or $CELLSEQ_LAB_DB): the lab [default: $CELLSEQ_LAB or 'lab'].",
    show_default=False)]
CopyDirOpt = Annotated[Path | None, typer.Option(
    "--copy-dir", help="With --db: where the run is rebuilt"
    " [default: runs/lab-<lab>-record/RUN_ID].",
    show_default=False)]


def _from_lab(run_dir: Path, db: str | None, lab: str | None, copy_dir: Path | None
              ) -> tuple[Path, str | None]:
    """RUN_DIR itself, or with --db (or --lab) the run of that id rebuilt from the lab record
    (psycopg is imported only then)."""
    if db is None and lab is None:
        return run_dir, None
    from sequencer.lab.cli import lab_copy

    return lab_copy(db, lab, str(run_dir), copy_dir)


@app.command()
def export(
    run_dir: RunDirArg,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    to: Annotated[Path | None, typer.Option("--to", help="Output folder.")] = None,
    cycles: Annotated[bool, typer.Option("--cycles", help="Write the per-cycle table"
                                         " (one row per cycle and cell) instead.")] = False,
    db: LabDbOpt = None,
    lab: LabNameOpt = None,
    copy_dir: CopyDirOpt = None,
) -> None:
    """Write each cell's data with Battery Data Format column names (or, with --cycles, one
    row per cycle and cell). With --db, RUN_DIR is the id of a run in the lab."""
    from sequencer.export import FORMATS, export_cycles, export_run

    if fmt not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    run_dir, _ = _from_lab(run_dir, db, lab, copy_dir)
    try:
        done = (export_cycles if cycles else export_run)(run_dir, fmt, to)
    except CellseqError as exc:
        _user_errors(exc)
    except ImportError as exc:
        _fail(f"{fmt} export needs an extra package: {exc}")
    for p in done.paths:
        out.print(str(p))
    for note in done.notes:
        err.print(f"note: {note}")
    if done.damage:
        from store.survey import damage_message

        _fail(damage_message(run_dir, list(dict.fromkeys(done.damage)), done.readable))


@app.command()
def report(
    run_dir: RunDirArg,
    db: LabDbOpt = None,
    lab: LabNameOpt = None,
    copy_dir: CopyDirOpt = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Analyse every cell again, even those whose analysis report/cells"
        " keeps from the same data and code.")] = False,
) -> None:
    """Derive the campaign's results from the raw data; write report/summary.json and
    report/index.html. A cell's analysis made before (while the run went on, or by an
    earlier report) from the same data with the same code is taken from report/cells, not
    made again. With --db, RUN_DIR is the id of a run in the lab."""
    from analysis.errors import AnalysisError
    from analysis.report import make_report
    from sequencer.status import run_status
    from sequencer.summary import print_summary

    run_dir, lab_status = _from_lab(run_dir, db, lab, copy_dir)
    try:
        # a run whose process died: interrupted; a run of the lab: as the lab knows it
        try:
            st: dict | None = run_status(run_dir)
        except CellseqError:   # damage, a lock that cannot be read: the report salvages what
            st = None          # it can and names what it could not read
        status = lab_status or (st["status"] if st else None)
        made = make_report(run_dir, status=status, fresh=fresh)
    except (CellseqError, AnalysisError) as exc:
        _user_errors(exc)
    summary, index = made.summary, made.index
    doc = json.loads(summary.read_text(encoding="utf-8"))
    run = doc.get("run", {})
    # what `run` prints at its end, from the summary just written (its notes included)
    print_summary(out, st or {"campaign": run_dir.name, "status": status, "cells": []}, doc)
    if run.get("status") != "completed":
        err.print(f"run {run.get('status')}: see the banner at the top of the report")
    out.print(f"report: {index}\nsummary: {summary}")
    reuse = made.reuse_line(during_run=False)
    if reuse is not None:
        out.print(reuse)


analyze_app = typer.Typer(no_args_is_help=True, help="Analyse data a user brings.")
app.add_typer(analyze_app, name="analyze")


@analyze_app.command("eis")
def analyze_eis(
    spectrum: Annotated[Path, typer.Argument(
        help="EC-Lab .mpr or .mpt, CSV (cellseq's -eis.csv export too), ZView export.",
        parser=_file_path)],
    thickness: Annotated[str | None, typer.Option(
        help="Membrane thickness, e.g. 300um (with --area or --diameter: conductivity).")
    ] = None,
    area: Annotated[str | None, typer.Option(help="Electrode area, e.g. 2.01cm2.")] = None,
    diameter: Annotated[str | None, typer.Option(help="Or the disc diameter, e.g. 16mm.")
                        ] = None,
    fit: Annotated[bool | None, typer.Option(
        "--fit/--no-fit", help="Cross-check with a bounded circuit fit [default: for a file"
        " of one spectrum; a series only with --fit, about a second or more per spectrum].",
        show_default=False)] = None,
    circuit: Annotated[str | None, typer.Option(
        help="Circuit of the fit (impedance.py syntax, R0 the bulk), e.g. 'R0-p(R1,CPE1)'; "
             "default: chosen from the spectrum.")] = None,
    f_min: Annotated[str | None, typer.Option(help="Fit only above this, e.g. 10Hz.")] = None,
    f_max: Annotated[str | None, typer.Option(help="Fit only below this, e.g. 1MHz.")] = None,
    galvanostatic: Annotated[bool | None, typer.Option(
        "--galvanostatic/--potentiostatic",
        help="How the spectra were measured; galvanostatic ones have their high-frequency"
             " artefacts left out [default: as the file says (EC-Lab GEIS)].",
        show_default=False)] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Draw R_b (and sigma) against time or index, and the Nyquist plots"
        " coloured by index, into this PNG.", parser=_file_path)] = None,
) -> None:
    """Bulk resistance (high-frequency intercept), and conductivity where the geometry is
    given, of every spectrum in a file, as JSON: a ``spectra`` list in file order.

    A file is cut into spectra where its own counters change (EC-Lab cycle number, z cycle,
    Ns; BDF step count) and where a sweep starts again; rows with frequency 0 (EC-Lab's rest
    before each sweep) are left out. The fit's R0 is the circuit's infinite-frequency
    resistance; ``model_intercept_ohm`` reads the fitted model by the same intercept rule. A
    spectrum of more than 300 points is fitted on 300 spread evenly in log frequency."""
    import math

    from analysis.eis_series import Geometry, analyse, plot_series
    from analysis.errors import AnalysisError
    from analysis.spectrum_files import read_spectra
    from protocols.units import UnitError, parse_quantity

    def quantity(flag: str, text: str, dimension: str) -> float:
        try:
            value = parse_quantity(_spaced(text), dimension)
        except UnitError as exc:
            _fail(f"{flag}: {exc}")
        if value <= 0:
            _fail(f"{flag} must be positive, got {text!r}")
        return value

    d = quantity("--thickness", thickness, "length") if thickness is not None else None
    if area is not None and diameter is not None:
        _fail("give --area or --diameter, not both")
    s = None
    if area is not None:
        s = quantity("--area", area, "area")
    elif diameter is not None:
        s = math.pi * (quantity("--diameter", diameter, "length") / 2) ** 2
        if not (math.isfinite(s) and s > 0):
            _fail(f"the electrode area from --diameter {diameter!r} is not a usable number")
    if (d is None) != (s is None):
        _fail("a conductivity needs both --thickness and --area (or --diameter); give both,"
              " or neither for the bulk resistance alone")
    window = {name: quantity(flag, text, "frequency") for name, flag, text in
              (("f_min_Hz", "--f-min", f_min), ("f_max_Hz", "--f-max", f_max)) if text}
    if (circuit or window) and fit is False:
        _fail("--circuit, --f-min and --f-max choose the fit; drop --no-fit")
    geometry = Geometry(d, s) if d is not None and s is not None else None
    try:
        series = read_spectra(spectrum, galvanostatic=galvanostatic)
        result = analyse(series, geometry, True if (circuit or window) and fit is None
                         else fit, circuit, window)
        ok = [e for e in result["spectra"] if e["bulk_resistance_ohm"] is not None]
        if not ok:
            raise AnalysisError(f"{spectrum}: " + "; ".join(
                f"spectrum {e['index']}: {e['note']}" if len(result["spectra"]) > 1
                else e["note"] for e in result["spectra"]))
        if plot is not None:
            plot_series(series, result, plot)
            result["plot"] = str(plot)
    except AnalysisError as exc:
        _fail(str(exc))
    for note in result["notes"]:
        err.print(f"note: {note}", soft_wrap=True)
    out.print_json(json.dumps(result))


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(
        help="EC-Lab .mpr/.mpt (any technique), Neware .nda/.ndax, BDF CSV; several files of"
             " one cell are joined in time order.", show_default=False, parser=_file_path)],
    out_dir: Annotated[Path, typer.Option("--out", help="New run directory.")],
    cell: Annotated[str | None, typer.Option(
        "--cell", help="Cell id [default: the cell file's id, else the first file's name].",
        show_default=False)] = None,
    cell_file: Annotated[Path | None, typer.Option(
        "--cell-file", help="The cell as YAML (id, kind, electrolyte, thickness, area or"
        " diameter, cathode: material, loading, diameter or area, specific_capacity).",
        parser=_file_path)] = None,
    kind: Annotated[str | None, typer.Option(
        help="blocking, symmetric_li, li_cu or full_cell.")] = None,
    electrolyte: Annotated[str | None, typer.Option(help="Electrolyte name.")] = None,
    thickness: Annotated[str | None, typer.Option(help="Membrane thickness, e.g. 300um.")
                         ] = None,
    area: Annotated[str | None, typer.Option(help="Membrane area, e.g. 2.01cm2.")] = None,
    diameter: Annotated[str | None, typer.Option(help="Or its diameter, e.g. 16mm.")] = None,
    cathode: Annotated[str | None, typer.Option(help="Cathode material, e.g. NCM811.")] = None,
    loading: Annotated[str | None, typer.Option(help="Cathode loading, e.g. 1.9mg/cm^2.")
                       ] = None,
    cathode_diameter: Annotated[str | None, typer.Option(
        help="Cathode disc diameter, e.g. 12mm.")] = None,
    cathode_area: Annotated[str | None, typer.Option(help="Or its area, e.g. 1.13cm2.")
                            ] = None,
    specific_capacity: Annotated[str | None, typer.Option(
        help="Cathode specific capacity defining 1C, e.g. 200mAh/g.")] = None,
    nominal_capacity: Annotated[str | None, typer.Option(
        "--nominal-capacity", help="A commercial cell's rated capacity, e.g. \"2.5 A h\" or"
        " 2500mAh: 1C of its C-rates; its capacities (mAh) and retention are counted on it"
        " (instead of the cathode options).", show_default=False)] = None,
) -> None:
    """Bring instrument files into a run directory that status, export, report and the
    analyses read like a cellseq run. Exit 2 (nothing written) for a file that is not what
    its name claims; a truncated file is imported up to where it ends, with a warning."""
    from rich.markup import escape

    from sequencer.importer import (
        ImportRefused,
        cell_from_options,
        import_files,
        load_cell_file,
    )

    given = {"kind": kind, "electrolyte": electrolyte,
             "thickness": _spaced(thickness) if thickness else None,
             "area": _spaced(area) if area else None,
             "diameter": _spaced(diameter) if diameter else None,
             "nominal_capacity": _spaced(nominal_capacity) if nominal_capacity else None}
    cathode_given = {"material": cathode, "loading": _spaced(loading) if loading else None,
                     "diameter": _spaced(cathode_diameter) if cathode_diameter else None,
                     "area": _spaced(cathode_area) if cathode_area else None,
                     "specific_capacity": _spaced(specific_capacity)
                     if specific_capacity else None}
    if any(v is not None for v in cathode_given.values()):
        given["cathode"] = {k: v for k, v in cathode_given.items() if v is not None}
    try:
        if cell_file is not None:
            if any(v is not None for v in given.values()):
                _fail("give the cell either in --cell-file or by options, not both")
            described = load_cell_file(cell_file)
        else:
            described = cell_from_options(given)
        outcome = import_files(files, out_dir, described, cell)
    except (CellseqError, ImportRefused) as exc:
        _user_errors(exc)
    for f in outcome.files:
        out.print(f"{f['path']}: {f['format']}, {f['technique'] or 'technique not named'},"
                  f" {f['points']:,} points -> experiment {f['experiment']}")
    for warning in outcome.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", markup=True, soft_wrap=True)
    for note in outcome.notes:
        if note not in outcome.warnings:
            err.print(f"[yellow]note:[/] {escape(note)}", markup=True, soft_wrap=True)
    out.print(f"imported {outcome.points:,} points in {outcome.steps} steps of cell"
              f" {outcome.cell} in {outcome.wall_s:.2f} s")
    out.print(f"run directory: {outcome.run_dir}")


def _spaced(text: str) -> str:
    """'300um' -> '300 um': CLI users write values without a space."""
    import re

    return re.sub(r"^([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)[ \t]*", r"\1 ", text.strip(),
                  flags=re.ASCII)


@app.command()
def schema() -> None:
    """Print the JSON Schema of protocol files, for editors."""
    from protocols.campaign import protocol_json_schema

    out.print_json(json.dumps(protocol_json_schema()))


@app.command()
def materials(
    name: Annotated[str | None, typer.Argument(
        help="Show one material in full (any name or alias the library accepts).",
        show_default=False)] = None,
    folder: Annotated[Path | None, typer.Option(
        "--folder", help="Also list the material files of this folder (a lab's own).")] = None,
) -> None:
    """List the material library: every material with its aliases and sources."""
    from materials import UnknownMaterial, builtin

    lib = builtin()
    if folder is not None:
        if not folder.is_dir():
            _fail(f"{folder}: not a folder")
        try:
            lib = lib.with_files(sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]))
        except (ValueError, OSError) as exc:
            _fail(str(exc))
    if name is not None:
        try:
            m = lib.resolve(name)
        except UnknownMaterial as exc:
            _fail(str(exc))
        head = [f"{m.name} ({m.kind}){'' if m.builtin else ', a lab file'}: {m.doc.description}",
                f"  file: {m.path.name}; aliases: {', '.join(m.aliases) or 'none'}"]
        for line in [*_wrapped(head), *m.describe_provenance()]:
            out.print(line, markup=False)
        return
    table = Table(title="cellseq material library")
    # in a narrow terminal the citations fold into dozens of lines a material: counted there
    # (COLUMNS read now: the console took its width when it was made)
    columns = os.environ.get("COLUMNS", "")
    narrow = (int(columns) if columns.isdigit() else out.width) < 120
    for col in ("material", "kind", "aliases", "sources", "assumed"):
        table.add_column(col, overflow="fold")
    for m in lib:
        cited = list(dict.fromkeys(_short_source(s) for s in m.sources.values()))
        sources = str(len(cited)) if narrow else "; ".join(cited)
        table.add_row(m.name + ("" if m.builtin else " *"), m.kind, ", ".join(m.aliases),
                      sources, str(len(m.assumed)))
    out.print(table)
    out.print("Names match ignoring case and punctuation, NCM = NMC, and electrolyte recipes as"
              " salt + solvents + additives ('1 M LiPF6 in EC:EMC 3:7 + 2 wt% VC')."
              " `cellseq materials NAME` shows one material's sources and assumed values.")


def _wrapped(lines: list[str], width: int = 80) -> list[str]:
    """Lines folded to ``width`` columns, continuing under their own indent plus two."""
    import textwrap

    out_lines: list[str] = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        out_lines += textwrap.wrap(line, width, subsequent_indent=indent,
                                   break_on_hyphens=False) or [""]
    return out_lines


def _short_source(text: str) -> str:
    """The first citation of a source text, for the table."""
    head = text.split(";")[0]
    return head if len(head) <= 90 else head[:87] + "..."


@app.command()
def dashboard(
    run_dirs: Annotated[list[Path] | None, typer.Argument(
        help="Run directories to show.", show_default=False)] = None,
    runs: Annotated[Path | None, typer.Option(
        "--runs", help="A folder of run directories: every run in it, new ones as they"
        " start.", show_default=False)] = None,
    host: Annotated[str, typer.Option(
        help="Interface to serve on. Beyond 127.0.0.1 every page needs the token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one).", min=0, max=65535)
                    ] = 8765,
    db: Annotated[str | None, typer.Option(
        "--db", help="Show a lab's runs, every station's, from the lab database at this URL"
        " (its password as the lab commands take it: PGPASSWORD, a pgpass file, or"
        " $CELLSEQ_LAB_DB / $CELLSEQ_LAB_DB_FILE without --db).", show_default=False)] = None,
    lab: Annotated[str | None, typer.Option(
        "--lab", help="Which lab of the database [default: $CELLSEQ_LAB, or 'lab'].",
        show_default=False)] = None,
) -> None:
    """Serve a live view of runs in the browser: every cell's state and last values, plots
    that follow the run as it records, the report's results, and pause, continue and stop.
    With --db (or --lab), every run of a lab's stations from its database; stopping one is
    the lab's cancel. Runs until Ctrl-C (the runs it shows are not affected)."""
    from sequencer.dashboard.run_dirs import check_run_dirs
    from sequencer.dashboard.source import SourceError

    from_lab = db is not None or lab is not None
    if from_lab and (run_dirs or runs is not None):
        _fail("show run directories (or --runs DIR), or a lab's database (--db), not both")
    if not from_lab and not run_dirs and runs is None:
        _fail("name run directories, or a folder of them with --runs DIR, or a lab's database"
              " with --db URL")
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        _fail(f"the dashboard needs its extra packages ({exc.name}): pip install"
              " 'cellseq[dashboard]'")
    from sequencer.dashboard.serve import listen, serve
    from sequencer.dashboard.start import announce, serve_local_runs

    source: RunSource | None = None
    try:
        if from_lab:
            source = _lab_source(db, lab)
        else:
            check_run_dirs(run_dirs or [], runs)
    except SourceError as exc:
        _user_errors(exc)
    try:
        sock = listen(host, port)
    except OSError as exc:
        _fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}")

    from rich.markup import escape

    def note(text: str) -> None:
        err.print(f"[yellow]note:[/] {escape(text)}", markup=True)

    with contextlib.suppress(KeyboardInterrupt):
        if source is None:   # usually served without this module (sequencer.launch)
            serve_local_runs(run_dirs or [], runs, host, sock, note)
        else:
            import secrets

            token = secrets.token_urlsafe(18)
            announce(len(source.runs()), host, sock, token, note)
            serve(source, sock, host, token)


def _lab_source(db: str | None, lab: str | None) -> RunSource:
    """The dashboard's source for a lab database (credentials as the lab commands take them);
    its errors as the lab commands show them."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        _fail(f"a lab database needs the lab's extra packages ({exc.name}): pip install"
              " 'cellseq[lab]'")
    from sequencer.dashboard.lab import LabRuns
    from sequencer.lab.cli import user_errors
    from sequencer.lab.settings import lab_db

    with user_errors():
        return LabRuns(lab_db(db, lab, application="cellseq dashboard"))


def _add_lab() -> None:
    from sequencer.lab.cli import lab_app  # typer and stdlib only; psycopg loads per command

    app.add_typer(lab_app, name="lab")


_add_lab()

sim_app = typer.Typer(no_args_is_help=True, help="Simulated instruments.")
app.add_typer(sim_app, name="sim")

DEFAULT_SERVED = Path(__file__).resolve().parents[1] / "protocols" / "examples" / "quickstart.yaml"


@sim_app.command("serve")
def sim_serve(
    protocol: Annotated[Path | None, typer.Argument(
        help="Protocol whose cells to serve (default: the quickstart's).",
        show_default=False)] = None,
    station_out: Annotated[Path, typer.Option("--station-out",
                                              help="Write the station file here.")] = Path(
                                                  "station.yaml"),
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second.",
                                         min=1e-3, max=1e6)] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulators' noise.", min=0)] = 0,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    cycler: Annotated[str, typer.Option(
        help="The cycler driver whose simulator serves the cycler cells (any that can be"
             " served; a one-channel instrument gets a server per cell).")] = "neware.bts",
    potentiostat: Annotated[str | None, typer.Option(
        help="The potentiostat driver whose simulator serves the potentiostat cells"
             " [default: biologic.vsp300].", show_default=False)] = None,
    chamber: Annotated[str | None, typer.Option(
        help="The chamber driver whose simulator serves the chambers [default: espec].",
        show_default=False)] = None,
) -> None:
    """Serve a simulated lab over the instruments' real protocols until Ctrl-C; write the
    station file that `cellseq run FILE --station` uses to reach it through the real drivers."""
    from sequencer.serve import serve, served_spec, write_station

    try:
        for kind, name in (("cycler", cycler), ("potentiostat", potentiostat),
                           ("chamber", chamber)):
            served_spec(kind, name)
    except ValueError as exc:
        _fail(f"--{kind}: {exc}")
    step_dir = station_out.resolve().parent / f"{station_out.stem}-bts-steps"
    step_dir.mkdir(parents=True, exist_ok=True)
    try:
        lab = serve(protocol or DEFAULT_SERVED, speed, seed, host, cycler, step_dir,
                    potentiostat, chamber)
    except CellseqError as exc:
        _user_errors(exc)
    except OSError as exc:
        _fail(f"cannot listen on {host}: {exc}")
    try:
        write_station(lab.station, station_out)
        for name, cfg in lab.station.instruments.items():
            out.print(f"{name}: {cfg.driver} at {cfg.address}")
        out.print(f"station file: {station_out} (speed x{speed:g}); Ctrl-C stops the servers")
        with contextlib.suppress(KeyboardInterrupt):
            while True:   # the servers run in their threads; this process waits for Ctrl-C
                time.sleep(3600)
    finally:
        lab.stop()


def main() -> None:
    global _via_main
    _via_main = True
    try:
        app()
    except BrokenPipeError:
        sys.exit(0)
    finally:
        # the process ends: the interpreter's exit would otherwise run the cyclic collector
        # over everything the command imported and made, a few times (0.2-0.5 s of CPU after
        # a report, on the command's time); what it frees goes with the process anyway
        gc.freeze()


if __name__ == "__main__":
    main()
