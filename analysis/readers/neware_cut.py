"""Neware files that were cut off: what of them can be read, and what is lost.

An ``.ndax`` is a zip archive whose directory is at its end, so a copy that stopped (a disk
that filled, a transfer cut) is no zip to :mod:`zipfile` or to NewareNDA. Its members are still
there, one after another, each behind a local header that gives its name and size: the whole
ones are taken as they are, and the member the file ends in is inflated as far as its bytes go
and cut to its last whole 4 KiB page (the unit NewareNDA reads ``.ndc`` files in). The members
are rebuilt into an archive NewareNDA reads. Where the points' times, cycles and steps live in
members apart from the voltages (``data_runInfo.ndc``, ``data_step.ndc``, BTS 8 and later), a
file that lost those cannot place its points and is refused; one whose run information ends
early is read up to the last point it times.

An ``.nda`` of version 130 ends with a footer block (its first byte 0x81, after the records):
one without it is cut off. Version 29 has no end mark, so whether it is whole cannot be told;
the import says so.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

from analysis.errors import AnalysisError

LOCAL_HEADER = b"PK\x03\x04"
_HEADER = struct.Struct("<4sHHHHHIIIHH")
PAGE = 4096
#: Members of an .ndax NewareNDA needs to time and count the points of a split file.
SPLIT_MEMBERS = ("data_runInfo.ndc", "data_step.ndc")


@dataclass
class CutArchive:
    """What a cut-off .ndax holds: the members rebuilt as an archive, and what is lost."""

    archive: bytes
    whole: list[str] = field(default_factory=list)
    cut_member: str | None = None
    cut_kept_bytes: int = 0
    cut_total_bytes: int = 0
    ends_at: int = 0


def looks_like_cut_zip(raw: bytes) -> bool:
    """A zip's first local header, with no directory at the end: a cut-off archive."""
    return raw.startswith(LOCAL_HEADER)


def salvage_ndax(raw: bytes, name: str) -> CutArchive:
    """The members of a cut-off .ndax, rebuilt; :class:`AnalysisError` naming the file, the
    byte it ends at and the member it ends in when nothing of its data can be read."""
    out = io.BytesIO()
    cut = CutArchive(b"", ends_at=len(raw))
    at = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as rebuilt:
        while at + _HEADER.size <= len(raw) and raw[at:at + 4] == LOCAL_HEADER:
            (_, _, flags, method, _, _, crc, size, full, name_len,
             extra_len) = _HEADER.unpack_from(raw, at)
            begin = at + _HEADER.size + name_len + extra_len
            if 0xFFFFFFFF in (size, full):   # zip64: the sizes are in an extra field
                full, size = _zip64_sizes(raw[begin - extra_len:begin], full, size)
            member = raw[at + _HEADER.size:at + _HEADER.size + name_len].decode(
                "utf-8" if flags & 0x800 else "cp437", errors="replace")
            if flags & 0x08 or method not in (0, 8):
                raise AnalysisError(_refusal(name, len(raw), member, "its members are written"
                                             " in a way cellseq cannot walk without the"
                                             " archive's directory"))
            if begin + size <= len(raw):
                data = _inflate(raw[begin:begin + size], method, whole=True, name=name,
                                size=len(raw), member=member)
                if zlib.crc32(data) != crc or len(data) != full:
                    raise AnalysisError(_refusal(name, len(raw), member,
                                                 "it does not match its own checksum"))
                rebuilt.writestr(member, data)
                cut.whole.append(member)
                at = begin + size
                continue
            if begin < len(raw):
                data = _inflate(raw[begin:], method, whole=False, name=name, size=len(raw),
                                member=member)
                pages = len(data) // PAGE * PAGE
                cut.cut_member, cut.cut_total_bytes = member, full
                if member.endswith(".ndc") and pages > PAGE:   # the first page is a header
                    rebuilt.writestr(member, data[:pages])
                    cut.cut_kept_bytes = pages
            else:
                cut.cut_member, cut.cut_total_bytes = member, full
            break
    if "data.ndc" not in cut.whole and not cut.cut_kept_bytes:
        raise AnalysisError(_refusal(name, len(raw), cut.cut_member or "its first member",
                                     "none of its points (data.ndc) is there"))
    cut.archive = out.getvalue()
    return cut


def needs_split_members(archive: bytes) -> list[str]:
    """The members a split .ndax (BTS 8 and later: voltages in data.ndc, times and steps in
    other members) lacks; [] for one that keeps everything in data.ndc."""
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        names = set(z.namelist())
        if "data.ndc" not in names:
            return ["data.ndc"]
        with z.open("data.ndc") as f:
            head = f.read(3)
    split = len(head) == 3 and head[2] >= 11   # the .ndc version, as NewareNDA reads it
    return [m for m in SPLIT_MEMBERS if m not in names] if split else []


def describe(cut: CutArchive, points: int, last_index: int | None) -> str:
    """Where the file ends and what was lost, for the import's warning."""
    where = f"the file is cut off at byte {cut.ends_at:,}"
    if cut.cut_member is None:
        return (f"{where}, in the archive's directory after its last member: every member"
                f" ({', '.join(cut.whole)}) is whole and its {points:,} points are read")
    if cut.cut_member:
        where += (f", inside its member {cut.cut_member} ({cut.cut_kept_bytes:,} of"
                  f" {cut.cut_total_bytes:,} bytes of it read)")
    kept = f"{points:,} points are read" + \
        (f", up to point {last_index:,}" if last_index is not None else "")
    return (f"{where}; {kept}; the rest of {cut.cut_member} and every member after it (the"
            " archive's directory, which would name them, is lost with them) are lost")


def nda_end(raw: bytes) -> str | None:
    """Where a cut-off .nda of version 130 ends (None: whole, or a version without an end
    mark, see :func:`nda_has_end_mark`)."""
    if not nda_has_end_mark(raw):
        return None
    record = _nda130_record_len(raw)
    at, records = 1024, 0
    while at + record <= len(raw):
        if raw[at] == 0x81:
            return None
        at += record
        records += 1
    return (f"the file is cut off at byte {len(raw):,} after {records:,} records (a version"
            " 130 .nda ends with a footer block, which is missing); the points up to there"
            " are read")


def nda_has_end_mark(raw: bytes) -> bool:
    return len(raw) > 1030 and raw[14] == 130


def _nda130_record_len(raw: bytes) -> int:
    """The record length as NewareNDA finds it (BTS 9.1 files vary; 88 otherwise)."""
    if raw[1024] == 0x55:
        nxt = raw.find(raw[1024:1026], 1026)
        if nxt > 1024:
            return nxt - 1024
    return 88


def _zip64_sizes(extra: bytes, full: int, size: int) -> tuple[int, int]:
    """The uncompressed and compressed sizes of a zip64 local header (its extra field 0x0001
    holds, in this order, those of the two that the header marks 0xFFFFFFFF)."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == 0x0001:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, at + 4))
            if full == 0xFFFFFFFF and values:
                full = values.pop(0)
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            break
        at += 4 + length
    return full, size


def _inflate(data: bytes, method: int, *, whole: bool, name: str, size: int, member: str
             ) -> bytes:
    """A member's bytes (``whole``: all of them; else as far as the cut-off stream goes)."""
    if method == 0:
        return data
    inflater = zlib.decompressobj(-15)
    try:
        return inflater.decompress(data) + (inflater.flush() if whole else b"")
    except zlib.error as exc:
        raise AnalysisError(_refusal(name, size, member, f"its bytes do not inflate ({exc})")
                            ) from None


def _refusal(name: str, size: int, member: str, why: str) -> str:
    return (f"{name}: the .ndax is cut off at byte {size:,} (inside {member}) and cannot be"
            f" read: {why}")
