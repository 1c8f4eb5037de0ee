"""A bounded, modulus-weighted equivalent-circuit fit: the cross-check of the bulk resistance.

The primary bulk resistance is the model-free high-frequency intercept (``analysis.eis``). This
module fits a circuit with impedance.py and reports its ``R0``; where the two disagree, the
spectrum (or the circuit) deserves a look.

Rules (``docs/physics.md``, "Robust bulk resistance"):

- every parameter is bounded, with bounds scaled from the data (unbounded fits of
  R-L-(R||C)-CPE converge to nonsense such as C -> 1e-37);
- residuals are weighted by |Z| (``weight_by_modulus``), so every decade counts alike;
- initial guesses come from the data: R0 from the intercept (or, when -Im Z falls from the top of
  the window, from the end of that bulk arc), an arc's resistance and apex frequency from -Im Z,
  the low-frequency CPE from the lowest-frequency point, L from the inductive tail; a few starting
  points are tried and the lowest cost wins;
- the solve runs in log coordinates for R, C, Q, L (they span 1e-11 to 1e6), on impedance.py's
  circuit function, then impedance.py's ``CustomCircuit.fit`` polishes (see ``_fit_once``);
- impedance.py is imported lazily (it pulls in matplotlib and scipy), and its numpy-2 gap is
  closed by putting ``numpy`` into its element namespace;
- a spectrum of more than :data:`MAX_FIT_POINTS` points is fitted on that many, spread evenly in
  log frequency, and the result's notes say so (the fit's time and memory grow with the points;
  the intercept always uses every point).

Default circuits (``circuit=None``): a spectrum that starts inductive gets ``L0-R0-CPE1`` or
``L0-R0-p(R1,CPE1)-CPE2``; any other ``p(R0,C0)-CPE1`` or ``p(R0,C0)-p(R1,CPE1)-CPE2`` - R0 || C0
being the bulk with its geometric capacitance (physics.md), which costs nothing when the bulk
arc lies far above the window and is needed when its tail reaches into it. The circuit with the
extra arc (grain boundary, interface, a low-frequency process) is kept only if it halves the
weighted sum of squares (``ARC_GAIN``) of a simpler fit that is not exact to rounding error
(``EXACT_RMSE``). Any impedance.py circuit containing ``R0`` may be passed.

``R0`` is the bulk resistance in the model. It differs from the intercept when an arc is not
complete above the crossing (a Li-ion cell's SEI arc overlapping the cable inductance: R0 below
the intercept; a grain-boundary arc whose tail reaches the top of the window; the bulk arc itself
reaching into the window: intercept below R0). ``FitResult.model_intercept_ohm`` is the fitted
model read by the same intercept rule as the data, for a like-for-like comparison.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import logging
import math
import re
import sys
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from analysis.eis import bulk_resistance
from analysis.errors import AnalysisError

_log = logging.getLogger(__name__)

__all__ = [
    "ARC_GAIN",
    "BLOCKING_CIRCUIT",
    "BULK_CIRCUIT",
    "INDUCTIVE_BULK_CIRCUIT",
    "INDUCTIVE_CIRCUIT",
    "MAX_FIT_POINTS",
    "FitResult",
    "fit_bulk_resistance",
    "predict_impedance",
]

#: Bulk (R_b || C_geo) and the blocking double layer.
BULK_CIRCUIT = "p(R0,C0)-CPE1"
#: ... plus one arc (grain boundary, interface, or a low-frequency process).
BLOCKING_CIRCUIT = "p(R0,C0)-p(R1,CPE1)-CPE2"
#: With cable inductance; C_geo is dropped: at the top of the window only L - R_b^2 C_geo shows.
INDUCTIVE_BULK_CIRCUIT = "L0-R0-CPE1"
INDUCTIVE_CIRCUIT = "L0-R0-p(R1,CPE1)-CPE2"
#: The circuit with the extra arc is chosen only if it cuts the weighted sum of squares below
#: this fraction of the simpler one's (3 more parameters would otherwise fit noise, and an arc the
#: data do not need makes R0 and R1 inseparable).
ARC_GAIN = 0.5
#: A simpler circuit that matches the spectrum to this modulus-weighted misfit is kept whatever
#: the other's: that is rounding error of the data (noise-free, synthetic), far below any
#: analyser's noise, and an extra arc can improve on it only by rounding.
EXACT_RMSE = 1e-9

#: Bounds on CPE exponents: below 0.3 a "CPE" is a resistor in disguise, above 1 not physical.
CPE_N_BOUNDS = (0.3, 1.0)
#: Capacitances (C, CPE Q) and time constants are bounded to this factor either side of the
#: data-derived guess: wide enough for any real cell, narrow enough to exclude 1e-37.
SPAN = 1e6

#: The fit uses at most this many points (20 per decade over 15 decades); more are thinned.
MAX_FIT_POINTS = 300

#: Solver iterations per start and stage (least_squares' max_nfev, curve_fit's maxfev). A
#: converging fit needs 10-50; an arc the data do not need can drift for thousands without
#: changing the answer, so the cap is what bounds the time.
MAX_EVALUATIONS = 1000

_FloatArray = npt.NDArray[np.float64]
_ELEMENT = re.compile(r"^(CPE|Wo|Ws|W|L|R|C)(\d+)$")


class SpectrumLike(Protocol):
    frequency_Hz: npt.ArrayLike
    z_real_ohm: npt.ArrayLike
    z_imag_ohm: npt.ArrayLike


@dataclass(frozen=True)
class FitResult:
    """The outcome of :func:`fit_bulk_resistance`.

    - ``r_bulk_ohm``: the fitted ``R0``;
    - ``parameters``: every fitted parameter by impedance.py's name (``R0``, ``CPE1_0`` = Q in
      S s^n, ``CPE1_1`` = n, ``L0`` in H ...), SI units;
    - ``circuit``: the impedance.py circuit string that was fitted;
    - ``rmse_rel``: sqrt(mean(|Z_fit - Z|^2 / |Z|^2)), the modulus-weighted misfit (0.01 = 1 %);
    - ``model_intercept_ohm``: ``bulk_resistance`` of the fitted model over the fitted window;
    - ``at_bounds``: parameters that ended on a bound (a hint that the circuit does not suit);
    - ``bounds``: the (lower, upper) bounds that were used, by parameter name;
    - ``notes``: warnings for a reader, e.g. an arc whose apex lies outside the fitted window
      (its R and R0 are then hard to separate).
    """

    r_bulk_ohm: float
    parameters: dict[str, float]
    circuit: str
    rmse_rel: float
    model_intercept_ohm: float
    at_bounds: tuple[str, ...]
    bounds: dict[str, tuple[float, float]]
    notes: tuple[str, ...] = ()


def fit_bulk_resistance(
    spectrum: SpectrumLike,
    circuit: str | None = None,
    *,
    f_min_Hz: float | None = None,
    f_max_Hz: float | None = None,
    initial_guess: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> FitResult:
    """Fit ``circuit`` and report its R0 (see the module docstring for the default circuits).

    ``f_min_Hz``/``f_max_Hz`` restrict the fit to a window of the spectrum. ``initial_guess`` and
    ``bounds`` override the data-derived values for the parameters they name (required for
    elements other than R, C, L, CPE, W, Wo, Ws). Raises ``AnalysisError`` when the spectrum is
    unusable, the circuit has no ``R0``, or no start converges.
    """
    freq, z = _window(spectrum, f_min_Hz, f_max_Hz)
    freq, z, thinned = _thin(freq, z)
    result = _fit(freq, z, circuit, dict(initial_guess or {}), dict(bounds or {}))
    return replace(result, notes=(thinned, *result.notes)) if thinned else result


def _fit(
    freq: _FloatArray,
    z: npt.NDArray[np.complex128],
    circuit: str | None,
    guess: dict[str, float],
    limits: dict[str, tuple[float, float]],
) -> FitResult:
    if circuit is not None:
        return _fit_circuit(circuit.replace(" ", ""), freq, z, guess, limits)
    simple, full = (
        (INDUCTIVE_BULK_CIRCUIT, INDUCTIVE_CIRCUIT)
        if _starts_inductive(z)
        else (BULK_CIRCUIT, BLOCKING_CIRCUIT)
    )
    known = set(_param_names(simple)) | set(_param_names(full))
    unknown = (set(guess) | set(limits)) - known
    if unknown:
        raise AnalysisError(
            f"the default circuits {simple!r} and {full!r} have no parameter(s) {sorted(unknown)}"
        )
    candidates: list[FitResult] = []
    for candidate in (simple, full):
        names = set(_param_names(candidate))
        mine = {k: v for k, v in guess.items() if k in names}
        my_limits = {k: v for k, v in limits.items() if k in names}
        try:
            candidates.append(_fit_circuit(candidate, freq, z, mine, my_limits))
        except AnalysisError:
            if candidate == full and candidates:
                break
            raise
    if (
        len(candidates) == 2
        and candidates[0].rmse_rel > EXACT_RMSE
        and candidates[1].rmse_rel ** 2 < ARC_GAIN * candidates[0].rmse_rel ** 2
    ):
        return candidates[1]
    return candidates[0]


def _fit_circuit(
    circuit: str,
    freq: _FloatArray,
    z: npt.NDArray[np.complex128],
    initial_guess: Mapping[str, float],
    bounds: Mapping[str, tuple[float, float]],
) -> FitResult:
    custom_circuit = _impedance_circuit_class()
    names = _param_names(circuit)
    if "R0" not in names:
        raise AnalysisError(f"circuit {circuit!r} has no R0, the bulk resistance to report")
    if freq.size <= len(names):
        raise AnalysisError(
            f"{circuit!r} has {len(names)} parameters; the fit needs more points than that, "
            f"the window has {freq.size}"
        )
    unknown = (set(initial_guess) | set(bounds)) - set(names)
    if unknown:
        raise AnalysisError(
            f"circuit {circuit!r} has no parameter(s) {sorted(unknown)}; it has {names}"
        )

    starts, lower, upper = _starts_and_bounds(circuit, names, freq, z, initial_guess, bounds)
    best: tuple[float, _FloatArray] | None = None
    failures: list[str] = []
    for start in starts:
        try:
            params = _fit_once(custom_circuit, circuit, start, lower, upper, freq, z)
        except (RuntimeError, ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            failures.append(str(exc))
            continue
        cost = _weighted_cost(custom_circuit, circuit, params, freq, z)
        if np.isfinite(cost) and (best is None or cost < best[0]):
            best = (cost, params)
    if best is None:
        raise AnalysisError(
            f"the fit of {circuit!r} did not converge from any of {len(starts)} starts: "
            + (failures[0] if failures else "non-finite cost")
        )
    cost, params = best
    parameters = {name: float(value) for name, value in zip(names, params, strict=True)}
    return FitResult(
        r_bulk_ohm=parameters["R0"],
        parameters=parameters,
        circuit=circuit,
        rmse_rel=float(math.sqrt(cost / freq.size)),
        model_intercept_ohm=_model_intercept(circuit, params, freq),
        at_bounds=_at_bounds(names, params, lower, upper),
        bounds={
            name: (float(lo), float(hi)) for name, lo, hi in zip(names, lower, upper, strict=True)
        },
        notes=_arc_notes(circuit, parameters, freq),
    )


def predict_impedance(
    circuit: str, parameters: Mapping[str, float], frequency_Hz: npt.ArrayLike
) -> npt.NDArray[np.complex128]:
    """Z of an impedance.py circuit at the given frequencies (e.g. a FitResult's model)."""
    custom_circuit = _impedance_circuit_class()
    names = _param_names(circuit)
    missing = [name for name in names if name not in parameters]
    if missing:
        raise AnalysisError(f"parameters for {circuit!r} lack {missing}")
    values = [float(parameters[name]) for name in names]
    freq = np.asarray(frequency_Hz, dtype=np.float64)
    return np.asarray(_predict(custom_circuit, circuit, values, freq), dtype=np.complex128)


# --- impedance.py --------------------------------------------------------------------------------


def _impedance_circuit_class():  # -> type[CustomCircuit], untyped upstream
    try:
        with _plotting_imported_on_first_use():
            from impedance.models.circuits import CustomCircuit, elements
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise AnalysisError(
            "the circuit fit needs impedance.py: pip install 'impedance>=1.7,<1.8'"
        ) from exc
    # impedance.py 1.7.1 evaluates circuit strings in this namespace; with numpy 2 a parameter
    # may print as np.float64(...), which needs the name "np" there (fixed upstream, unreleased).
    elements.circuit_elements.setdefault("np", np)
    return CustomCircuit


#: What impedance.py's circuits module takes from its plotting module.
_IMPEDANCE_PLOTS = ("plot_altair", "plot_bode", "plot_nyquist")


@contextlib.contextmanager
def _plotting_imported_on_first_use() -> Iterator[None]:
    """impedance.py's circuits module imports its plotting module, which imports altair and
    pyplot: 0.3 s of a report's start, for plots the fit never draws. While the circuits
    module is first imported, a stand-in takes the plotting module's place; each of the
    three functions it lends imports the real module when called, so a ``CustomCircuit``'s
    ``plot`` still works. The stand-in leaves ``sys.modules`` once the import is done."""
    name = "impedance.visualization"
    if name in sys.modules or "impedance.models.circuits" in sys.modules:
        yield
        return
    stand_in = types.ModuleType(name, "stands in while impedance.py's circuits import")

    def lend(function: str) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            return getattr(importlib.import_module(name), function)(*args, **kwargs)
        call.__name__ = function
        return call

    for function in _IMPEDANCE_PLOTS:
        setattr(stand_in, function, lend(function))
    sys.modules[name] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]


def preload_circuit_fit() -> None:
    """Import impedance.py and scipy's solvers now (a process about to fork workers that
    may fit: they inherit them instead of each importing them again)."""
    _impedance_circuit_class()
    import scipy.optimize  # noqa: F401


def _param_names(circuit: str) -> list[str]:
    custom_circuit = _impedance_circuit_class()
    from impedance.models.circuits.fitting import calculateCircuitLength

    try:
        length = calculateCircuitLength(circuit)
        names = custom_circuit(circuit, initial_guess=[1.0] * length).get_param_names()[0]
    except Exception as exc:  # impedance.py raises assorted errors for a bad circuit string
        raise AnalysisError(f"not a usable impedance.py circuit {circuit!r}: {exc}") from exc
    return list(names)


def _fit_once(custom_circuit, circuit, start, lower, upper, freq, z) -> _FloatArray:
    """One bounded, modulus-weighted least-squares fit from ``start``.

    Two stages. First scipy's trust-region solver on impedance.py's circuit function with every
    parameter whose bounds span more than a decade (R, C, Q, L, tau) taken as its logarithm: the
    parameters span 1e-11 F to 1e6 Ohm, and in linear coordinates the solver stops early on such
    spectra (a c-LLZTO cell with C_geo: 2 % off in R0 with a zero-residual answer available).
    Then impedance.py's own ``CustomCircuit.fit`` (bounded, ``weight_by_modulus``) polishes from
    there; the better of the two is kept. Both stages take the circuit's Jacobian in closed
    form where its elements have one (``analysis.eis_jacobian``: a finite-difference one costs
    a model evaluation per parameter and iteration), else finite differences.
    """
    from scipy.optimize import curve_fit, least_squares

    target = np.hstack([z.real, z.imag])
    sigma = np.hstack([np.abs(z), np.abs(z)])
    function = _circuit_function(circuit)
    model_jacobian = _circuit_jacobian(circuit)
    log = (lower >= 0) & (upper > 10 * lower)
    floor = np.where(lower > 0, lower, upper * 1e-12)
    lo = np.where(log, np.log(floor), lower)
    hi = np.where(log, np.log(upper), upper)

    def to_params(x: _FloatArray) -> _FloatArray:
        return np.where(log, np.exp(x), x)

    progress = _Progress(len(start))

    def residual(x: _FloatArray) -> _FloatArray:
        with np.errstate(all="ignore"):
            r = (np.asarray(function(freq, *to_params(x)), dtype=np.float64) - target) / sigma
        r = np.where(np.isfinite(r), r, 1e10)
        progress.record(x, float(np.sum(r**2)))
        return r

    def jacobian(x: _FloatArray) -> _FloatArray:
        assert model_jacobian is not None
        params = to_params(x)
        # d params / d x is the parameter itself where x is its logarithm
        scale = np.where(log, params, 1.0)
        progress.spend(len(x))   # as many evaluations as a finite-difference Jacobian's
        with np.errstate(all="ignore"):
            j = model_jacobian(freq, *params) * scale[None, :] / sigma[:, None]
        return np.where(np.isfinite(j), j, 0.0)

    x0 = np.where(log, np.log(np.maximum(start, floor)), start)
    margin = 1e-9 * (hi - lo)
    x0 = np.clip(x0, lo + margin, hi - margin)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        with contextlib.suppress(_Stalled):
            least_squares(
                residual,
                x0,
                jac="2-point" if model_jacobian is None else jacobian,
                bounds=(lo, hi),
                method="trf",
                ftol=1e-12,
                xtol=1e-12,
                gtol=1e-12,
                max_nfev=MAX_EVALUATIONS,
            )
    if progress.best_x is None:
        raise ValueError("no finite residual")
    best = np.clip(to_params(progress.best_x), lower, upper)
    best_cost = progress.best_cost

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            # what impedance.py's CustomCircuit.fit(weight_by_modulus=True) calls, on the
            # compiled circuit function
            polished, _ = curve_fit(
                function,
                freq,
                target,
                p0=[float(v) for v in best],
                bounds=(list(lower), list(upper)),
                sigma=sigma,
                jac=model_jacobian,
                maxfev=MAX_EVALUATIONS,
                ftol=1e-13,
            )
        polished = np.asarray(polished, dtype=np.float64)
        polished_cost = float(np.sum(((function(freq, *polished) - target) / sigma) ** 2))
        if np.all(np.isfinite(polished)) and polished_cost < best_cost:
            best = polished
    except (RuntimeError, ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        _log.debug("polishing the fit failed (%s); the first stage's answer stands", exc)
    if not np.all(np.isfinite(best)):
        raise ValueError("non-finite parameters")
    return best


#: Stand-ins for the parameters when a circuit's expression is built once (see below).
_SENTINEL = 1000001.0


@functools.lru_cache(maxsize=64)
def _circuit_function(circuit: str):  # -> Callable[[freq, *params], NDArray], as wrapCircuit
    """impedance.py's ``wrapCircuit(circuit, {})``, the same numbers bit for bit, at a
    fraction of the cost: impedance.py writes the parameters and frequencies into a Python
    expression as text and evaluates it anew on every call (most of a fit's time). Here the
    expression impedance.py builds is read once, as a syntax tree (nothing of it is run), into
    nested calls of the same element functions on the same lists of floats, or, for circuits
    of R, C, L and CPE, of the same formulas on arrays (``analysis.eis_jacobian``)."""
    from impedance.models.circuits.fitting import wrapCircuit

    from analysis.eis_jacobian import circuit_function

    tree, length = _circuit_tree(circuit)
    on_arrays = None if tree is None else circuit_function(tree, _SENTINEL, length)
    if on_arrays is not None:   # R, C, L, CPE in series and parallel
        return on_arrays
    node = _circuit_node_of(circuit)
    if node is None:
        return wrapCircuit(circuit, {})   # an expression of a shape not foreseen: as it was

    def function(frequencies: npt.ArrayLike, *parameters: float) -> _FloatArray:
        x = node(np.array(parameters).tolist(), np.array(frequencies).tolist())
        return np.hstack([np.real(x), np.imag(x)])

    return function


@functools.lru_cache(maxsize=64)
def _circuit_node_of(circuit: str):  # -> Callable[[params, freqs], Z] | None
    """:func:`_circuit_node` of the circuit's expression, None for a shape not foreseen."""
    from impedance.models.circuits.elements import circuit_elements

    tree, length = _circuit_tree(circuit)
    if tree is None:
        return None
    try:
        return _circuit_node(tree, circuit_elements, length)
    except _Unforeseen:
        return None


@functools.lru_cache(maxsize=64)
def _circuit_jacobian(circuit: str):  # -> Callable[[freq, *params], NDArray] | None
    """The derivatives of :func:`_circuit_function`'s output by each parameter in closed form
    (``analysis.eis_jacobian``), or None for a circuit of elements without one."""
    from analysis.eis_jacobian import circuit_jacobian

    tree, length = _circuit_tree(circuit)
    return None if tree is None else circuit_jacobian(tree, _SENTINEL, length)


def _circuit_tree(circuit: str) -> tuple[ast.expr | None, int]:
    """impedance.py's expression of ``circuit`` with the stand-ins ``_SENTINEL + i`` for its
    parameters, as a syntax tree (None where it does not parse), and the parameter count."""
    from impedance.models.circuits.fitting import buildCircuit, calculateCircuitLength

    length = calculateCircuitLength(circuit)
    text, _ = buildCircuit(circuit, [], *[_SENTINEL + i for i in range(length)],
                           constants={}, eval_string="", index=0)
    try:
        return ast.parse(text, mode="eval").body, length
    except SyntaxError:
        return None, length


class _Unforeseen(Exception):
    """impedance.py built a circuit expression of a shape :func:`_circuit_node` does not read."""


def _circuit_node(tree: ast.expr, elements: dict, length: int):
    """A function of (parameters, frequencies) computing what ``tree`` (impedance.py's circuit
    expression: ``s([...])`` and ``p([...])`` of element calls ``R([p0],[])`` whose numbers are
    the stand-ins ``_SENTINEL + i``) computes, calling the same functions with the same
    arguments."""
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
            and tree.func.id in elements and not tree.keywords
            and all(isinstance(a, ast.List) for a in tree.args)):
        raise _Unforeseen(ast.dump(tree))
    combine = elements[tree.func.id]
    if tree.func.id in ("s", "p") and len(tree.args) == 1:
        children = [_circuit_node(child, elements, length) for child in tree.args[0].elts]
        return lambda P, F: combine([child(P, F) for child in children])
    if len(tree.args) != 2 or tree.args[1].elts:
        raise _Unforeseen(ast.dump(tree))
    indices = []
    for value in tree.args[0].elts:
        index = round(value.value - _SENTINEL) if isinstance(value, ast.Constant) else -1
        if not 0 <= index < length or value.value != _SENTINEL + index:
            raise _Unforeseen(ast.dump(tree))
        indices.append(index)
    if len(indices) != getattr(combine, "num_params", len(indices)):
        raise _Unforeseen(ast.dump(tree))
    element = _unchecked(combine)
    return lambda P, F: element([P[i] for i in indices], F)


def _unchecked(element):  # -> the element function impedance.py's decorator wraps
    """The function an impedance.py element wraps, without the wrapper's type check: the check
    loops over every frequency in Python on every call (a third of a bulk fit's time), and
    what it checks holds by construction here (lists of floats, as many parameters as the
    element takes, counted above). The wrapper itself where its function cannot be found."""
    for cell in getattr(element, "__closure__", None) or ():
        inner = cell.cell_contents
        if callable(inner) and getattr(inner, "__name__", None) == element.__name__ \
                and inner is not element:
            return inner
    return element


class _Stalled(Exception):
    """Raised from inside the residual to end a solve that no longer improves."""


class _Progress:
    """Best point seen so far; stops a solve that has stalled or fits to rounding error.

    Counted in residual evaluations (Jacobian columns included), so it works with any scipy.
    """

    def __init__(self, n_params: int) -> None:
        self.best_x: _FloatArray | None = None
        self.best_cost = math.inf
        self.evaluations = 0
        self.last_gain = 0
        self.patience = 30 * (n_params + 1)

    def record(self, x: _FloatArray, cost: float) -> None:
        self.evaluations += 1
        if cost < self.best_cost:
            # a gain counts if it is relatively or absolutely (1e-12: rms misfit 1e-7) visible
            if self.best_cost - cost > 1e-6 * self.best_cost + 1e-12:
                self.last_gain = self.evaluations
            self.best_cost, self.best_x = cost, np.array(x, dtype=np.float64)
        if self.evaluations - self.last_gain > self.patience:
            raise _Stalled

    def spend(self, evaluations: int) -> None:
        """Count work done without residuals (a closed-form Jacobian) as that many."""
        self.evaluations += evaluations


def _predict(custom_circuit, circuit, values, freq) -> npt.NDArray[np.complex128]:
    """Z of the circuit: impedance.py's ``predict`` where its expression is one
    :func:`_circuit_function` reads (the same numbers, without evaluating text per call)."""
    frequencies = np.asarray(freq, dtype=np.float64)
    if _circuit_node_of(circuit) is not None:
        with np.errstate(all="ignore"):
            parts = _circuit_function(circuit)(frequencies, *[float(v) for v in values])
        return parts[:frequencies.size] + 1j * parts[frequencies.size:]
    model = custom_circuit(circuit, initial_guess=[float(v) for v in values])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # "Simulating circuit based on initial parameters"
        return np.asarray(model.predict(freq, use_initial=True), dtype=np.complex128)


def _weighted_cost(custom_circuit, circuit, params, freq, z) -> float:
    residual = (_predict(custom_circuit, circuit, params, freq) - z) / np.abs(z)
    return float(np.sum(np.abs(residual) ** 2))


def _model_intercept(circuit: str, params: _FloatArray, freq: _FloatArray) -> float:
    dense = np.logspace(np.log10(freq.max()), np.log10(freq.min()), 40 * _decades(freq) + 2)
    z = _predict(_impedance_circuit_class(), circuit, params, dense)
    return bulk_resistance(dense, z.real, z.imag)


# --- data ----------------------------------------------------------------------------------------


def _window(
    spectrum: SpectrumLike, f_min_Hz: float | None, f_max_Hz: float | None
) -> tuple[_FloatArray, npt.NDArray[np.complex128]]:
    """Finite arrays sorted highest frequency first, restricted to the window."""
    try:
        freq = np.asarray(spectrum.frequency_Hz, dtype=np.float64)
        real = np.asarray(spectrum.z_real_ohm, dtype=np.float64)
        imag = np.asarray(spectrum.z_imag_ohm, dtype=np.float64)
    except AttributeError as exc:
        raise AnalysisError(
            "fit_bulk_resistance needs a Spectrum (frequency_Hz, z_real_ohm, z_imag_ohm)"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"the spectrum must be numbers: {exc}") from exc
    if not (freq.ndim == real.ndim == imag.ndim == 1 and freq.size == real.size == imag.size):
        raise AnalysisError("frequency_Hz, z_real_ohm and z_imag_ohm must be 1-D of one length")
    if not (np.all(np.isfinite(freq)) and np.all(np.isfinite(real)) and np.all(np.isfinite(imag))):
        raise AnalysisError("the spectrum contains NaN or inf")
    keep = freq > 0
    if f_min_Hz is not None:
        keep &= freq >= f_min_Hz
    if f_max_Hz is not None:
        keep &= freq <= f_max_Hz
    order = np.argsort(-freq[keep], kind="stable")
    freq, z = freq[keep][order], (real + 1j * imag)[keep][order]
    if np.any(z == 0):
        raise AnalysisError("the spectrum has a point with Z = 0; modulus weighting needs |Z| > 0")
    tiny, huge = np.finfo(np.float64).tiny, np.finfo(np.float64).max
    with np.errstate(over="ignore"):
        modulus = np.abs(z)
    if np.any(modulus < 1e6 * tiny) or np.any(modulus > huge / 1e6) or np.any(freq < 1e6 * tiny):
        raise AnalysisError(
            "the spectrum holds values too close to the limits of floating point (|Z| or f "
            "below 1e-302 or |Z| above 1e302) for a circuit fit"
        )
    if np.unique(freq).size < 3:
        raise AnalysisError(
            f"a circuit fit needs at least 3 distinct frequencies in the window, "
            f"got {np.unique(freq).size}"
        )
    return freq, z


def _thin(
    freq: _FloatArray, z: npt.NDArray[np.complex128]
) -> tuple[_FloatArray, npt.NDArray[np.complex128], str]:
    """At most MAX_FIT_POINTS points, the nearest to targets evenly spaced in log frequency
    (``freq`` is sorted highest first), and a note saying so; unchanged when fewer."""
    if freq.size <= MAX_FIT_POINTS:
        return freq, z, ""
    log_f = np.log10(freq)
    targets = np.linspace(log_f[0], log_f[-1], MAX_FIT_POINTS)
    index = np.clip(np.searchsorted(-log_f, -targets), 0, freq.size - 1)
    index = np.unique(index)
    note = (
        f"the fit used {index.size} of the {freq.size} points, spread evenly in log frequency "
        f"(a fit takes at most {MAX_FIT_POINTS}); the intercept used every point"
    )
    return freq[index], z[index], note


def _starts_inductive(z: npt.NDArray[np.complex128]) -> bool:
    """The two highest-frequency points are inductive (one alone may be noise)."""
    return bool(z.size >= 2 and z[0].imag > 0 and z[1].imag > 0)


def _decades(freq: _FloatArray) -> int:
    return max(1, math.ceil(math.log10(freq.max() / freq.min())))


@dataclass(frozen=True)
class _Features:
    """What the guesses are made of, read off the spectrum (sorted highest frequency first)."""

    intercept: float  # analysis.eis.bulk_resistance
    top_open: bool  # -Im Z falls from the top of the window: an arc's apex lies above it
    arc_end_re: float  # Re Z at the first local minimum of -Im Z (the end of the first arc)
    arc_r: float  # the first arc's resistance, read as R0-p(R1,CPE1)
    arc_apex_Hz: float  # its apex frequency (above the window when top_open)
    next_arc_r: float  # what follows the first arc, up to the largest Re Z
    next_apex_Hz: float
    low_q: float  # Q of a CPE (n = 0.85) matching Im Z at the lowest frequency
    low_c: float  # C matching Im Z at the lowest frequency
    inductance: float  # from the highest-frequency Im Z, or a small value
    z_scale: float  # max |Z|


def _features(freq: _FloatArray, z: npt.NDArray[np.complex128]) -> _Features:
    intercept = bulk_resistance(freq, z.real, z.imag)
    z_scale = float(np.max(np.abs(z)))
    tiny_r = 1e-6 * z_scale
    minus_im = -z.imag
    top_open = False
    arc_end_re = intercept
    arc_r = max(0.05 * intercept, tiny_r)
    arc_apex = 10.0 * float(freq[0])
    end_index = 0
    capacitive = np.flatnonzero(minus_im > 0)
    if capacitive.size >= 3:
        first = int(capacitive[0])
        y = minus_im[first:]
        # the first local minimum of -Im Z closes the first arc; the maximum before it is its apex
        minima = [i for i in range(1, y.size - 1) if y[i] <= y[i - 1] and y[i] < y[i + 1]]
        if minima:
            end = minima[0]
            end_index = first + end
            apex = int(np.argmax(y[: end + 1]))
            arc_end_re = float(z.real[end_index])
            if apex == 0:
                top_open = True
                arc_apex = 3.0 * float(freq[first])
                # a semicircle through the top point reaches the axis about -Im Z further left
                arc_r = max(arc_end_re - max(float(z.real[first] - y[0]), 0.0), tiny_r)
            else:
                arc_apex = float(freq[first + apex])
                arc_r = max(arc_end_re - intercept, tiny_r)
    # a second arc: a maximum of -Im Z after the first arc's end (a blocking spike has none)
    after = minus_im[end_index:]
    peaks = [
        i for i in range(1, after.size - 1) if after[i] >= after[i - 1] and after[i] > after[i + 1]
    ]
    if end_index and peaks:
        apex_index = end_index + peaks[0]
        next_apex = float(freq[apex_index])
        next_arc_r = max(2.0 * (float(z.real[apex_index]) - arc_end_re), tiny_r)
    else:
        next_apex = float(freq[end_index]) / 10.0
        next_arc_r = max(0.05 * arc_end_re, tiny_r)
    n = 0.85
    omega_low = 2 * math.pi * float(freq[-1])
    im_low = max(abs(float(z.imag[-1])), 1e-6 * z_scale)
    low_q = math.sin(n * math.pi / 2) / (im_low * omega_low**n)
    low_c = 1.0 / (im_low * omega_low)
    omega_high = 2 * math.pi * float(freq[0])
    if z[0].imag > 0:
        inductance = float(z[0].imag) / omega_high
    else:
        inductance = 1e-3 * float(np.min(np.abs(z))) / omega_high
    return _Features(
        intercept,
        top_open,
        arc_end_re,
        arc_r,
        arc_apex,
        next_arc_r,
        next_apex,
        low_q,
        low_c,
        inductance,
        z_scale,
    )


def _parallel_pairs(circuit: str) -> dict[str, str]:
    """Resistor <-> capacitive element of every two-element p(...) group, both ways."""
    pairs: dict[str, str] = {}
    for a, b in re.findall(r"p\(([A-Za-z]+\d+),([A-Za-z]+\d+)\)", circuit):
        resistor, other = (a, b) if a.startswith("R") else (b, a)
        if resistor.startswith("R") and other.startswith(("C", "CPE")):
            pairs[resistor], pairs[other] = other, resistor
    return pairs


def _starts_and_bounds(
    circuit: str,
    names: list[str],
    freq: _FloatArray,
    z: npt.NDArray[np.complex128],
    user_guess: Mapping[str, float],
    user_bounds: Mapping[str, tuple[float, float]],
) -> tuple[list[_FloatArray], _FloatArray, _FloatArray]:
    """Starting vectors (the data-derived one first, then variations) and the bounds."""
    feats = _features(freq, z)
    f_top = float(freq[0])
    series_r0 = feats.intercept
    variants = [
        {
            "r0": series_r0,
            "r0_arc": feats.arc_end_re,
            "arc": feats.arc_r,
            "apex": feats.arc_apex_Hz,
        },
        {
            "r0": 0.9 * series_r0,
            "r0_arc": 0.95 * feats.arc_end_re,
            "arc": 0.2 * series_r0,
            "apex": f_top,
        },
        {
            "r0": series_r0,
            "r0_arc": feats.arc_end_re,
            "arc": feats.arc_r,
            "apex": float(np.sqrt(f_top * freq[-1])),
        },
        {
            "r0": 0.7 * series_r0,
            "r0_arc": 1.05 * feats.arc_end_re,
            "arc": 0.5 * series_r0,
            "apex": 3.0 * f_top,
        },
    ]
    tables = [_element_guesses(circuit, names, freq, z, feats, v) for v in variants]
    lower, upper = np.empty(len(names)), np.empty(len(names))
    starts = [np.empty(len(names)) for _ in variants]
    for i, name in enumerate(names):
        automatic = name in tables[0]
        if not automatic and not (name in user_guess and name in user_bounds):
            raise AnalysisError(
                f"no automatic guess for {name!r}: pass initial_guess and bounds for it"
            )
        lo, hi = user_bounds[name] if name in user_bounds else tables[0][name][1:]
        lo, hi = float(lo), float(hi)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise AnalysisError(f"bounds for {name!r} must be finite with lower < upper: {lo, hi}")
        lower[i], upper[i] = lo, hi
        for start, table in zip(starts, tables, strict=True):
            guess = float(user_guess[name]) if name in user_guess else table[name][0]
            margin = 1e-9 * (hi - lo)  # strictly inside, so the solver can move both ways
            start[i] = float(np.clip(guess, lo + margin, hi - margin))
    unique: list[_FloatArray] = []
    for start in starts:
        if not any(np.allclose(start, other) for other in unique):
            unique.append(start)
    return unique, lower, upper


def _element_guesses(
    circuit: str,
    names: list[str],
    freq: _FloatArray,
    z: npt.NDArray[np.complex128],
    feats: _Features,
    variant: Mapping[str, float],
) -> dict[str, tuple[float, float, float]]:
    """(guess, lower, upper) for every parameter of a known element type."""
    pairs = _parallel_pairs(circuit)
    elements = list(dict.fromkeys(name.partition("_")[0] for name in names))
    r_max = float(np.max(z.real))
    r_high = 10.0 * feats.z_scale
    omega_max = 2 * math.pi * float(freq[0])
    omega_min = 2 * math.pi * float(freq[-1])
    n = 0.85
    r0_in_arc = "R0" in pairs

    # resistance and apex frequency of each R || C/CPE pair, in circuit order. With R0 in an arc
    # and that arc open at the top of the window, R0 is the arc's diameter and R1 what follows;
    # otherwise R0 is the series resistance (the intercept) and R1 the first arc.
    bulk_arc = r0_in_arc and feats.top_open
    r0 = variant["r0_arc"] if bulk_arc else variant["r0"]
    arcs: dict[str, tuple[float, float]] = {}
    if r0_in_arc:
        arcs["R0"] = (r0, feats.arc_apex_Hz if bulk_arc else 10.0 * float(freq[0]))
    r, f = (feats.next_arc_r, feats.next_apex_Hz) if bulk_arc else (variant["arc"], variant["apex"])
    for element in elements:
        if element.startswith("R") and element in pairs and element != "R0":
            arcs[element] = (r, f)
            r, f = 10.0 * r, f / 100.0

    table: dict[str, tuple[float, float, float]] = {}
    for element in elements:
        match = _ELEMENT.match(element)
        if match is None:
            continue
        kind = match.group(1)
        if kind == "R":
            if element == "R0":
                table[element] = (r0, 0.0, r_max)
            elif element in arcs:
                table[element] = (arcs[element][0], 0.0, r_high)
            else:
                table[element] = (0.1 * max(variant["r0"], 1e-6 * feats.z_scale), 0.0, r_high)
        elif kind in ("C", "CPE"):
            exponent = 1.0 if kind == "C" else n
            partner = pairs.get(element)
            if partner in arcs:
                r_arc, apex = arcs[partner]
                q = 1.0 / (max(r_arc, 1e-12) * (2 * math.pi * apex) ** exponent)
            else:
                q = feats.low_c if kind == "C" else feats.low_q
            if kind == "C":
                table[element] = (q, q / SPAN, q * SPAN)
            else:
                table[f"{element}_0"] = (q, q / SPAN, q * SPAN)
                table[f"{element}_1"] = (n, *CPE_N_BOUNDS)
        elif kind == "L":
            ceiling = max(100.0 * feats.inductance, 1e-3 * feats.z_scale / omega_max)
            table[element] = (feats.inductance, 0.0, ceiling)
        elif kind == "W":  # sigma in Ohm s^-1/2
            sigma = max(feats.z_scale, 1e-12) * math.sqrt(omega_min) / 2
            table[element] = (sigma, sigma / SPAN, sigma * SPAN)
        else:  # Wo, Ws: (R, tau)
            tau = 1.0 / omega_min
            table[f"{element}_0"] = (max(feats.next_arc_r, 1e-6 * feats.z_scale), 0.0, r_high)
            table[f"{element}_1"] = (tau, tau / SPAN, tau * SPAN)
    return table


def _arc_notes(circuit: str, parameters: Mapping[str, float], freq: _FloatArray) -> tuple[str, ...]:
    """Name every fitted R || C/CPE arc whose apex lies outside the fitted window."""
    notes = []
    for resistor, partner in _parallel_pairs(circuit).items():
        if not resistor.startswith("R"):
            continue
        r = parameters.get(resistor, 0.0)
        q = parameters.get(partner, parameters.get(f"{partner}_0", 0.0))
        n = 1.0 if partner.startswith("C") and not partner.startswith("CPE") else None
        if n is None:
            n = parameters.get(f"{partner}_1", 1.0)
        if r <= 0 or q <= 0 or n <= 0:
            continue
        apex = (r * q) ** (-1.0 / n) / (2 * math.pi)
        if not freq.min() <= apex <= freq.max():
            notes.append(
                f"{resistor} || {partner} peaks at {apex:.3g} Hz, outside the fitted window "
                f"({freq.min():.3g} - {freq.max():.3g} Hz)"
            )
    return tuple(notes)


def _at_bounds(
    names: list[str], params: _FloatArray, lower: _FloatArray, upper: _FloatArray
) -> tuple[str, ...]:
    stuck = []
    for name, value, lo, hi in zip(names, params, lower, upper, strict=True):
        if lo > 0 and hi / lo > 100:  # log-scaled range: compare in log space
            near = math.log(value / lo) < 1e-3 or math.log(hi / value) < 1e-3
        else:
            near = value - lo <= 1e-6 * (hi - lo) or hi - value <= 1e-6 * (hi - lo)
        if near:
            stuck.append(name)
    return tuple(stuck)
