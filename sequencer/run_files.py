"""The files of a run directory, and the copies of every file its campaign was made of.

A run directory holds::

    run.sqlite            data, journal, checkpoints (the store package)
    manifest.json         the files below with their SHA-256, the station, seed, versions
    protocol/...          a byte copy of every file the campaign was made of
    station.yaml          the station (without passwords)
    run.log               the executor's account of what it did and why
    .cellseq.lock         held by the process working in the run

The protocol copies sit in their own folder, so no protocol file name can collide with the
run's own files, at the same places relative to each other as the originals (an included
file ``../shared/cells.yaml`` keeps its place beside the including file's folder), so the
copies load as the originals did. What is copied is what the loader read and parsed
(:attr:`protocols.campaign.Campaign.files`), never the originals read again. Other files a
campaign comes to depend on (profiles, material files) join that list and are kept the same
way. ``resume`` reads only these copies, each checked against the manifest's SHA-256 first.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from core.atomic_write import write_atomic
from drivers.errors import CellseqError
from sequencer.journal import LOG_NAME
from sequencer.locks import RUN_LOCK

if TYPE_CHECKING:   # the protocol's models are not needed to name a run's files (export)
    from protocols.campaign import Campaign
    from protocols.loader import SourceFile

MANIFEST = "manifest.json"
STATION_COPY = "station.yaml"
PROTOCOL_DIR = "protocol"
#: The files and folders of a run directory besides its store (store.STORE_FILES).
RUN_FILES = (MANIFEST, STATION_COPY, PROTOCOL_DIR, LOG_NAME, RUN_LOCK)


class RunDirError(CellseqError):
    """The run directory cannot be used: for a new run, or to resume the one it holds."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def layout(campaign: Campaign) -> dict[PurePosixPath, bytes]:
    """Where each file of the campaign goes in the run directory (``protocol/...``), the
    top file first, with its bytes.

    The files keep their places relative to each other: each is placed at its path relative
    to the folder all of them share. A file named by an absolute path could not be found
    among the copies, so it is refused, as is one path read twice with different bytes."""
    files = campaign.files
    if not files:
        raise RunDirError("the campaign lists no file it was loaded from")
    for f in files:
        if f.reference is not None and _absolute(f.reference):
            raise RunDirError(f"{f.name} is named by an absolute path ({f.reference!r}); a run"
                              " keeps copies of its files and resumes from them, so name it"
                              " relative to the file that includes it")
    try:
        root = Path(os.path.commonpath([_written(f).parent for f in files]))
    except ValueError:   # paths on different drives
        raise RunDirError("the campaign's files are on different drives; a run keeps copies"
                          " of them at their relative places, so keep them on one") from None
    out: dict[PurePosixPath, bytes] = {}
    for f in files:
        place = PurePosixPath(PROTOCOL_DIR, *_written(f).relative_to(root).parts)
        if place in out and out[place] != f.data:
            raise RunDirError(f"{f.path} was read twice with different contents; is it being"
                              " edited? Start the run again")
        out.setdefault(place, f.data)
    return out


def write_copies(run_dir: Path, files: dict[PurePosixPath, bytes]) -> None:
    """Write the copies, each whole or not at all."""
    for place, data in files.items():
        write_atomic(run_dir / place, data)


def manifest_files(files: dict[PurePosixPath, bytes]) -> list[dict[str, str]]:
    """The manifest's record of the copies: path in the run directory and SHA-256."""
    return [{"path": str(place), "sha256": sha256(data)} for place, data in files.items()]


def listed_files(manifest: dict[str, Any], where: Path) -> list[tuple[PurePosixPath, str]]:
    """(path, SHA-256) of every copy the manifest (read from ``where``) lists, the top file
    first; a run made before the manifest listed its files has just its protocol file,
    beside the store."""
    top = manifest["protocol"]["file"]
    entries = manifest.get("files")
    if entries is None:
        if PurePosixPath(top).name != top:
            raise RunDirError(f"{where}: the protocol file name must not contain a path")
        return [(PurePosixPath(top), manifest["protocol"]["sha256"])]
    if not isinstance(entries, list) or not entries:
        raise RunDirError(f"{where}: 'files' must list the run's files")
    out = []
    for k, e in enumerate(entries):
        if not (isinstance(e, dict) and isinstance(e.get("path"), str)
                and isinstance(e.get("sha256"), str)):
            raise RunDirError(f"{where}: files[{k}] lacks its path or SHA-256")
        place = PurePosixPath(e["path"])
        if _absolute(e["path"]) or ".." in place.parts or len(place.parts) < 2 or \
                place.parts[0] != PROTOCOL_DIR:
            raise RunDirError(f"{where}: files[{k}] {e['path']!r} is not a place inside the"
                              f" run directory's {PROTOCOL_DIR} folder")
        out.append((place, e["sha256"]))
    if out[0][0] != PurePosixPath(top):
        raise RunDirError(f"{where}: the protocol file {top!r} is not the first of 'files'")
    return out


def verify_copies(run_dir: Path, listed: list[tuple[PurePosixPath, str]]) -> None:
    """Every copy is there, a file, and byte for byte what the run started with."""
    for place, digest in listed:
        path = run_dir / place
        if not path.is_file():
            raise RunDirError(f"{path} is missing: the run directory no longer holds the whole"
                              " protocol the run started with; it cannot be resumed")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RunDirError(f"{path} cannot be read: {exc.strerror or exc}") from None
        if sha256(data) != digest:
            raise RunDirError(f"{path} has been changed since the run started (its SHA-256"
                              " differs from the manifest's); the run resumes only from the"
                              " files it started with. Put the original back to resume")


def check_loaded(run_dir: Path, campaign: Campaign,
                 listed: list[tuple[PurePosixPath, str]]) -> None:
    """The campaign loaded from the copies was read from these copies alone, and from the
    bytes the manifest lists (nothing outside the run directory, nothing changed since
    :func:`verify_copies`)."""
    known = {(run_dir / place).resolve(): digest for place, digest in listed}
    for f in campaign.files:
        where = _resolved(f)
        if where not in known:
            raise RunDirError(f"the protocol copy in {run_dir} reads {f.path}, which is not"
                              " one of the run's copies; the run cannot be resumed from its"
                              " own files")
        if sha256(f.data) != known[where]:
            raise RunDirError(f"{f.path} changed while it was read; it is not the file the"
                              " run started with")


def _resolved(f: SourceFile) -> Path:
    return f.path.resolve()


def _written(f: SourceFile) -> Path:
    """Where the file was read as its referrer wrote it (links kept): its copy goes there."""
    return f.lexical if f.lexical is not None else f.path


def _absolute(reference: str) -> bool:
    """Absolute on this system or on Windows (a drive or a UNC share)."""
    return os.path.isabs(reference) or reference.startswith(("/", "\\")) or \
        (len(reference) > 1 and reference[1] == ":")
