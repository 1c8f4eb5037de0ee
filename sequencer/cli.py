"""The ``cellseq`` command line. A user error exits 2 with a message and no traceback."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from drivers.errors import CellseqError
from sequencer.progress import TerminalProgress

if TYPE_CHECKING:
    from sequencer.runner import RunOutcome

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Validate, plan, run and analyse electrochemistry test campaigns.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

USER_ERROR = 2


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(USER_ERROR)


def _user_errors(exc: CellseqError) -> NoReturn:
    _fail(str(exc))


ProtocolArg = Annotated[Path, typer.Argument(help="Protocol file (YAML).", show_default=False)]
RunDirArg = Annotated[Path, typer.Argument(help="Run directory.", show_default=False)]


@app.command()
def validate(protocol: ProtocolArg) -> None:
    """Check a protocol file: schema, units, references, and the plan on a simulated station."""
    from sequencer.runner import prepare

    try:
        checked = prepare(protocol)
    except CellseqError as exc:
        _user_errors(exc)
    c = checked.campaign
    out.print(f"{protocol}: valid: campaign {c.campaign!r}, {len(c.cells)} cells,"
              f" {len(c.experiments)} experiments")


StationOpt = Annotated[Path | None, typer.Option(
    "--station", help="Station file: instruments, channels and chambers of the cells.")]


@app.command()
def plan(
    protocol: ProtocolArg,
    station: StationOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """When each experiment starts and ends, given the station's resources."""
    from sequencer.runner import prepare

    try:
        p = prepare(protocol, station)
    except CellseqError as exc:
        _user_errors(exc)
    if as_json:
        out.print_json(json.dumps(p.to_json()))
        return
    table = Table("experiment", "cells", "resources", "start (h)", "end (h)", "duration (h)",
                  title=f"{p.campaign.campaign}: plan on station {p.station.station!r}")
    for e in p.experiments:
        table.add_row(e.name, ", ".join(e.cells), ", ".join(e.resources),
                      f"{e.start_s / 3600:.1f}", f"{e.end_s / 3600:.1f}",
                      f"{e.estimate_s / 3600:.1f}")
    out.print(table)
    out.print(f"makespan {p.makespan_s / 3600:.1f} h ({p.makespan_s / 86400:.1f} days);"
              " loops that may end early are counted in full")


@app.command()
def run(
    protocol: ProtocolArg,
    sim: Annotated[bool, typer.Option("--sim", help="Dry run on simulated instruments.")] = False,
    station: StationOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulators' noise.", min=0)] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", help="New run directory.")] = None,
    report: Annotated[bool, typer.Option(help="Write the report when the run ends.")] = True,
) -> None:
    """Run a protocol; with --sim on simulators in virtual time."""
    from sequencer.runner import run_simulated

    if not sim and station is None:
        _fail("no station given: use --sim for a dry run on simulators, or --station FILE")
    if out_dir is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out_dir = Path("runs") / f"{protocol.stem}-{stamp}"
    bars = TerminalProgress(err) if err.is_terminal else None   # quiet when not a terminal
    try:
        outcome = run_simulated(protocol, out_dir, seed, station, bars)
    except CellseqError as exc:
        _user_errors(exc)
    except KeyboardInterrupt:
        err.print(f"interrupted; every output is off. Resume with: cellseq resume {out_dir}")
        raise typer.Exit(130) from None
    _finish_run(outcome, report)


def _finish_run(outcome: RunOutcome, report: bool) -> None:
    from sequencer.summary import print_summary

    print_summary(out, outcome.run_dir, wall_s=outcome.wall_s)
    if report:
        from analysis.errors import AnalysisError
        from analysis.report import make_report

        try:
            _, index, _ = make_report(outcome.run_dir)
        except (CellseqError, AnalysisError) as exc:
            _fail(f"the run ended, but its report was not made: {exc}")
        out.print(f"report: {index}")
    if outcome.faulted:
        err.print(f"cells that faulted: {', '.join(outcome.faulted)} (see run.log)")
        raise typer.Exit(1)


@app.command()
def resume(
    run_dir: RunDirArg,
    station: Annotated[Path | None, typer.Option(
        "--station", help="The run's station file again, for passwords a run never stores.")
    ] = None,
    report: Annotated[bool, typer.Option(help="Write the report when the run ends.")] = True,
) -> None:
    """Continue a run that a crash, a power cut or Ctrl-C stopped, where its data ends."""
    from sequencer.runner import resume_run

    bars = TerminalProgress(err) if err.is_terminal else None
    try:
        outcome = resume_run(run_dir, bars, station=station)
    except CellseqError as exc:
        _user_errors(exc)
    except KeyboardInterrupt:
        err.print(f"interrupted; every output is off. Resume with: cellseq resume {run_dir}")
        raise typer.Exit(130) from None
    _finish_run(outcome, report)


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
    out.print(f"run {st['run_dir']}: campaign {st['campaign']}, {st['mode']}, seed {st['seed']},"
              f" status [bold]{st['status']}[/]")
    table = Table("cell", "state", "experiment", "step", "kind", "cycle", "points",
                  "last V", "last I (mA)")
    for c in st["cells"]:
        last = c["last"] or {}
        table.add_row(c["cell"], c["state"], str(c["experiment"] or "-"), str(c["step"]),
                      str(c["step_kind"] or "-"), str(c["cycle"]), str(c["points"]),
                      f"{last['voltage_V']:.4f}" if "voltage_V" in last else "-",
                      f"{last['current_A'] * 1e3:.4f}" if "current_A" in last else "-")
    out.print(table)
    for note in st.get("notes", []):
        err.print(f"note: {note}")
    if st["status"] in ("interrupted", "aborted"):
        out.print(f"the run stopped before its end; continue it with: cellseq resume {run_dir}")


@app.command()
def export(
    run_dir: RunDirArg,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    to: Annotated[Path | None, typer.Option("--to", help="Output folder.")] = None,
) -> None:
    """Write each cell's data with Battery Data Format column names."""
    from sequencer.export import FORMATS, export_run

    if fmt not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    try:
        done = export_run(run_dir, fmt, to)
    except CellseqError as exc:
        _user_errors(exc)
    except ImportError as exc:
        _fail(f"{fmt} export needs an extra package: {exc}")
    for p in done.paths:
        out.print(str(p))
    for note in done.notes:
        err.print(f"note: {note}")
    if done.damage:
        from sequencer.store_survey import damage_message

        _fail(damage_message(run_dir, list(dict.fromkeys(done.damage)), done.readable))


@app.command()
def report(run_dir: RunDirArg) -> None:
    """Derive the campaign's results from the raw data; write report/summary.json and
    report/index.html."""
    from analysis.errors import AnalysisError
    from analysis.report import make_report

    try:
        summary, index, notes = make_report(run_dir)
    except (CellseqError, AnalysisError) as exc:
        _user_errors(exc)
    for note in notes:
        err.print(f"note: {note}")
    out.print(f"{summary}\n{index}")


analyze_app = typer.Typer(no_args_is_help=True, help="Analyse data a user brings.")
app.add_typer(analyze_app, name="analyze")


@analyze_app.command("eis")
def analyze_eis(
    spectrum: Annotated[Path, typer.Argument(help="CSV, EC-Lab .mpt/.txt or ZView export.")],
    thickness: Annotated[str, typer.Option(help="Membrane thickness, e.g. 300um.")],
    area: Annotated[str | None, typer.Option(help="Electrode area, e.g. 2.01cm2.")] = None,
    diameter: Annotated[str | None, typer.Option(help="Or the disc diameter, e.g. 16mm.")
                        ] = None,
    fit: Annotated[bool, typer.Option(help="Cross-check with a bounded circuit fit.")] = True,
    circuit: Annotated[str | None, typer.Option(
        help="Circuit of the fit (impedance.py syntax, R0 the bulk), e.g. 'R0-p(R1,CPE1)'; "
             "default: chosen from the spectrum.")] = None,
    f_min: Annotated[str | None, typer.Option(help="Fit only above this, e.g. 10Hz.")] = None,
    f_max: Annotated[str | None, typer.Option(help="Fit only below this, e.g. 1MHz.")] = None,
) -> None:
    """Bulk resistance (high-frequency intercept) and conductivity of one spectrum, as JSON.

    The fit's R0 is the circuit's infinite-frequency resistance; ``model_intercept_ohm`` reads
    the fitted model by the same intercept rule, the like-for-like check of the fit."""
    import math

    from analysis.eis import bulk_resistance, conductivity_S_per_m
    from analysis.errors import AnalysisError
    from analysis.spectrum_files import read_spectrum
    from protocols.units import UnitError, parse_quantity

    def quantity(flag: str, text: str, dimension: str) -> float:
        try:
            return parse_quantity(_spaced(text), dimension)
        except UnitError as exc:
            _fail(f"{flag}: {exc}")

    d = quantity("--thickness", thickness, "length")
    if (area is None) == (diameter is None):
        _fail("give --area or --diameter (one of them)")
    s = quantity("--area", area, "area") if area else \
        math.pi * (quantity("--diameter", diameter or "", "length") / 2) ** 2
    window = {name: quantity(flag, text, "frequency") for name, flag, text in
              (("f_min_Hz", "--f-min", f_min), ("f_max_Hz", "--f-max", f_max)) if text}
    if d <= 0 or s <= 0:
        _fail("--thickness and --area must be positive")
    if (circuit or window) and not fit:
        _fail("--circuit, --f-min and --f-max choose the fit; drop --no-fit")
    try:
        sp = read_spectrum(spectrum)
        r_b = bulk_resistance(sp.frequency_Hz, sp.z_real_ohm, sp.z_imag_ohm)
    except (AnalysisError, OSError) as exc:
        _fail(str(exc))
    result: dict[str, object] = {
        "file": str(spectrum), "points": len(sp.frequency_Hz),
        "bulk_resistance_ohm": r_b, "method": "high-frequency real-axis intercept",
        "thickness_m": d, "area_m2": s,
        "ionic_conductivity_mS_cm": conductivity_S_per_m(r_b, d, s) * 10,
        "read_as": list(sp.notes)}
    if fit:
        from analysis.eis_fit import fit_bulk_resistance

        try:
            f = fit_bulk_resistance(sp, circuit, **window)
        except AnalysisError as exc:
            if circuit or window:  # the user's choice does not suit the spectrum
                _fail(f"--circuit/--f-min/--f-max: {exc}")
            result["fit"] = {"error": str(exc)}
        else:
            notes = list(f.notes)
            if f.at_bounds:
                notes.append(f"parameters ended on a bound ({', '.join(f.at_bounds)}): the "
                             "circuit may not suit this spectrum; try another with --circuit")
            result["fit"] = {"circuit": f.circuit, "bulk_resistance_ohm": f.r_bulk_ohm,
                             "relative_rmse": f.rmse_rel,
                             "agreement": f.r_bulk_ohm / r_b - 1,
                             "model_intercept_ohm": f.model_intercept_ohm,
                             "model_intercept_agreement": f.model_intercept_ohm / r_b - 1,
                             "parameters": f.parameters,
                             "parameters_at_bounds": list(f.at_bounds), "notes": notes}
    out.print_json(json.dumps(result))


def _spaced(text: str) -> str:
    """'300um' -> '300 um': CLI users write values without a space."""
    import re

    return re.sub(r"^([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*", r"\1 ", text.strip())


@app.command()
def schema() -> None:
    """Print the JSON Schema of protocol files, for editors."""
    from protocols import Campaign

    out.print_json(json.dumps(Campaign.model_json_schema()))


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
        help="What serves the cycler cells: neware.bts or keithley2450.")] = "neware.bts",
) -> None:
    """Serve a simulated lab over the instruments' real protocols until Ctrl-C; write the
    station file that `cellseq run FILE --station` uses to reach it through the real drivers."""
    from sequencer.serve import serve, write_station

    if cycler not in ("neware.bts", "keithley2450"):
        _fail(f"--cycler is neware.bts or keithley2450, not {cycler!r}")
    step_dir = station_out.resolve().parent / f"{station_out.stem}-bts-steps"
    step_dir.mkdir(parents=True, exist_ok=True)
    try:
        lab = serve(protocol or DEFAULT_SERVED, speed, seed, host, cycler, step_dir)
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
    try:
        app()
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
