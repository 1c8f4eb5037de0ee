"""The Jacobian of an impedance.py circuit in closed form, for the circuit fit's solver.

A finite-difference Jacobian costs one model evaluation per parameter at every iteration, and
was most of a bulk-arc fit's time (``analysis.eis_fit``). The derivatives of the elements a
default circuit is made of are short formulas (w = 2 pi f, Z the element's impedance):

- ``R``: Z = R, dZ/dR = 1;
- ``C``: Z = 1 / (C j w), dZ/dC = -Z / C;
- ``L``: Z = L j w, dZ/dL = j w;
- ``CPE``: Z = 1 / (Q (j w)^n), dZ/dQ = -Z / Q, dZ/dn = -Z ln(j w);
- in series the derivatives add; in parallel, Z = 1 / sum(1 / Z_i) and
  dZ = Z^2 sum(dZ_i / Z_i^2).

The tree read is the one :func:`analysis.eis_fit._circuit_function` reads (impedance.py's
circuit expression with stand-ins for the parameters). A circuit with any other element
(Warburg elements, ...) gets no closed form (None): its fit keeps the finite differences.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

_Complex = npt.NDArray[np.complex128]
#: (parameters, angular frequencies, whether the derivatives are wanted)
#: -> (Z, dZ/dparameters as columns, or None)
_Node = Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64], bool],
                 tuple[_Complex, _Complex | None]]
#: The elements with a closed form here, and how many parameters each takes.
_ELEMENTS = {"R": 1, "C": 1, "L": 1, "CPE": 2}


def circuit_jacobian(tree: ast.expr, sentinel: float, length: int
                     ) -> Callable[..., npt.NDArray[np.float64]] | None:
    """``jacobian(frequencies, *parameters)``: the derivatives of the circuit function's output
    (real parts, then imaginary parts, as impedance.py's ``wrapCircuit`` returns them) by each
    parameter, one column each; None where the tree holds an element without a closed form.
    ``tree``'s parameters are the stand-ins ``sentinel + i`` for i below ``length``."""
    node = _node(tree, sentinel, length)
    if node is None:
        return None

    def jacobian(frequencies: npt.ArrayLike, *parameters: float) -> npt.NDArray[np.float64]:
        omega = 2 * np.pi * np.asarray(frequencies, dtype=np.float64)
        with np.errstate(all="ignore"):
            _, columns = node(np.asarray(parameters, dtype=np.float64), omega, True)
        assert columns is not None
        out = np.vstack([columns.real, columns.imag])
        return np.where(np.isfinite(out), out, 0.0)

    return jacobian


def circuit_function(tree: ast.expr, sentinel: float, length: int
                     ) -> Callable[..., npt.NDArray[np.float64]] | None:
    """``function(frequencies, *parameters)``: impedance.py's circuit function (real parts,
    then imaginary parts) on arrays, by the same formulas in the same order as its element
    functions (the same numbers), for the circuits :func:`circuit_jacobian` reads; else
    None."""
    node = _node(tree, sentinel, length)
    if node is None:
        return None

    def function(frequencies: npt.ArrayLike, *parameters: float) -> npt.NDArray[np.float64]:
        omega = 2 * np.pi * np.asarray(frequencies, dtype=np.float64)
        z, _ = node(np.asarray(parameters, dtype=np.float64), omega, False)
        return np.hstack([z.real, z.imag])

    return function


def _node(tree: ast.expr, sentinel: float, length: int) -> _Node | None:
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
            and not tree.keywords and all(isinstance(a, ast.List) for a in tree.args)):
        return None
    name = tree.func.id
    if name in ("s", "p") and len(tree.args) == 1:
        children = [_node(child, sentinel, length) for child in tree.args[0].elts]
        if not children or any(child is None for child in children):
            return None
        return _series(children, length) if name == "s" else _parallel(children, length)
    if name not in _ELEMENTS or len(tree.args) != 2 or tree.args[1].elts:
        return None
    indices = []
    for value in tree.args[0].elts:
        if not isinstance(value, ast.Constant) or not isinstance(value.value, float):
            return None
        index = round(value.value - sentinel)
        if not 0 <= index < length or value.value != sentinel + index:
            return None
        indices.append(index)
    if len(indices) != _ELEMENTS[name]:
        return None
    return _element(name, indices, length)


def _element(name: str, at: list[int], length: int) -> _Node:
    def node(p: npt.NDArray[np.float64], omega: npt.NDArray[np.float64], derive: bool
             ) -> tuple[_Complex, _Complex | None]:
        if name == "R":
            z = np.full(omega.size, p[at[0]], dtype=np.complex128)
        elif name == "C":
            z = 1.0 / (p[at[0]] * 1j * omega)
        elif name == "L":
            z = p[at[0]] * 1j * omega
        else:  # CPE
            z = 1.0 / (p[at[0]] * (1j * omega) ** p[at[1]])
        if not derive:
            return z, None
        columns = np.zeros((omega.size, length), dtype=np.complex128)
        if name == "R":
            columns[:, at[0]] = 1.0
        elif name == "C":
            columns[:, at[0]] = -z / p[at[0]]
        elif name == "L":
            columns[:, at[0]] = 1j * omega
        else:  # CPE
            columns[:, at[0]] = -z / p[at[0]]
            columns[:, at[1]] = -z * np.log(1j * omega)
        return z, columns

    return node


def _series(children: list[_Node], length: int) -> _Node:
    def node(p: npt.NDArray[np.float64], omega: npt.NDArray[np.float64], derive: bool
             ) -> tuple[_Complex, _Complex | None]:
        z = np.zeros(omega.size, dtype=np.complex128)
        columns = np.zeros((omega.size, length), dtype=np.complex128) if derive else None
        for child in children:
            zi, ci = child(p, omega, derive)
            z = z + zi
            if columns is not None:
                columns += ci
        return z, columns

    return node


def _parallel(children: list[_Node], length: int) -> _Node:
    def node(p: npt.NDArray[np.float64], omega: npt.NDArray[np.float64], derive: bool
             ) -> tuple[_Complex, _Complex | None]:
        y = np.zeros(omega.size, dtype=np.complex128)
        weighted = np.zeros((omega.size, length), dtype=np.complex128) if derive else None
        for child in children:
            zi, ci = child(p, omega, derive)
            y = y + 1 / zi
            if weighted is not None:
                weighted += ci / (zi * zi)[:, None]
        z = 1 / y
        return z, None if weighted is None else weighted * (z * z)[:, None]

    return node


__all__ = ["circuit_function", "circuit_jacobian"]
