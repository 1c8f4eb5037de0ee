"""Readers of the files instruments write, into :class:`Recording` (cellseq's quantities).

- EC-Lab ``.mpr`` (binary, through galvani: :mod:`analysis.readers.eclab_mpr`);
- EC-Lab ``.mpt`` (text: :mod:`analysis.readers.eclab_mpt`);
- Neware ``.nda`` / ``.ndax`` (through NewareNDA: :mod:`analysis.readers.neware`);
- BDF CSV (cellseq's export and other Battery Data Format writers:
  :mod:`analysis.readers.bdf_csv`).

Each file is read through :func:`core.input_files.read_input_file` (a regular file, at
most :data:`MAX_FILE_BYTES`); its kind is told by its name and checked against its bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from analysis.errors import AnalysisError
from analysis.readers.recording import ReaderMissing, Recording
from core.input_files import UnreadableFile, read_input_file

__all__ = [
    "FORMATS",
    "MAX_FILE_BYTES",
    "ReadFile",
    "ReaderMissing",
    "Recording",
    "read_recording",
]

#: One instrument file (a year of 1 s points with every EC-Lab column is about 2 GB).
MAX_FILE_BYTES = 4 * 1024**3
#: File name endings and what they are.
FORMATS = {".mpr": "EC-Lab .mpr", ".mpt": "EC-Lab .mpt", ".nda": "Neware .nda",
           ".ndax": "Neware .ndax", ".csv": "BDF CSV"}


@dataclass(frozen=True)
class ReadFile:
    """A recording with the SHA-256 and size of the bytes it was read from."""

    recording: Recording
    sha256: str
    size_bytes: int


def read_recording(path: str | Path, limit_bytes: int = MAX_FILE_BYTES) -> ReadFile:
    """Read one instrument file; :class:`AnalysisError` naming the file and what is wrong
    (:class:`ReaderMissing` when the optional reader of its format is not installed)."""
    name = str(path)
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise AnalysisError(f"{name}: unknown kind of file {suffix or '(no ending)'!r}; cellseq"
                            f" reads {', '.join(FORMATS)} ({', '.join(FORMATS.values())})")
    try:
        raw = read_input_file(path, limit_bytes)
    except UnreadableFile as exc:
        raise AnalysisError(f"{name}: {exc.reason}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if suffix == ".mpr":
        from analysis.readers.eclab_mpr import read_mpr
        recording = read_mpr(raw, name)
    elif suffix == ".mpt":
        from analysis.readers.eclab_mpt import read_mpt
        recording = read_mpt(raw, name)
    elif suffix in (".nda", ".ndax"):
        from analysis.readers.neware import read_neware
        recording = read_neware(raw, name, suffix)
    else:
        from analysis.readers.bdf_csv import read_bdf_csv
        recording = read_bdf_csv(raw, name)
    if not len(recording):
        raise AnalysisError(f"{name}: holds no points ({recording.format}, technique"
                            f" {recording.technique or 'not named'})")
    return ReadFile(recording, digest, len(raw))
