"""easy-biologic as it runs on the instrument's PC, its EClib DLL the fake, for one test at a time.

easy-biologic refuses to import anywhere but on Windows (its ``__init__`` checks
``platform.system()``) and loads BioLogic's DLLs through ``ctypes.WinDLL`` as it is imported. Here
both are patched only while it is imported, and only in tests: ``platform.system()`` says
"Windows" and ``ctypes.WinDLL`` gives the :class:`FakeEClib`. The modules are then taken out of
``sys.modules`` again, so every test imports easy-biologic afresh over its own fake, and code
outside these tests still finds the real package refusing Linux.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import importlib.util
import platform
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest

from simulators.instruments.eclib_fake import FakeEClib, fake_windll

#: The easy-biologic the fake and the driver are written against (the test extra pins it).
EASY_BIOLOGIC_VERSION = "0.4.0"
PACKAGE = "easy_biologic"


def unavailable() -> str | None:
    """Why easy-biologic cannot run here, or None."""
    if importlib.util.find_spec(PACKAGE) is None:
        return ("easy-biologic is not installed (the test extra installs"
                f" easy-biologic=={EASY_BIOLOGIC_VERSION}: pip install -e '.[test]')")
    if importlib.util.find_spec("pkg_resources") is None:
        return ("easy-biologic 0.4.0 imports pkg_resources, which this environment's setuptools"
                " no longer ships (the test extra pins setuptools<82)")
    return None


def _loaded() -> dict[str, ModuleType]:
    return {name: module for name, module in sys.modules.items()
            if name == PACKAGE or name.startswith(PACKAGE + ".")}


@contextmanager
def easy_biologic_over(eclib: FakeEClib) -> Iterator[ModuleType]:
    """easy-biologic imported with ``eclib`` as its EClib (skips the test where it cannot be
    installed); removed from ``sys.modules`` when the block ends."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    before = _loaded()
    for name in before:
        del sys.modules[name]
    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(platform, "system", lambda: "Windows")
        patch.setattr(ctypes, "WinDLL", fake_windll(eclib), raising=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pkg_resources.*")
            module = importlib.import_module(PACKAGE)
        patch.undo()   # only the import needed them
        yield module
    finally:
        patch.undo()
        for name in _loaded():
            del sys.modules[name]
        sys.modules.update(before)


def installed_version() -> str:
    return importlib.metadata.version("easy-biologic")
