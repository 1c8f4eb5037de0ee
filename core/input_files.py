"""One reader for every file a user hands cellseq: regular files only, read within a limit.

Protocols, the files they include, station files and the spectra ``cellseq analyze eis`` reads
all come through :func:`read_input_file`, so none of them can make cellseq read without end
(``/dev/zero``, ``/dev/urandom``), wait for ever (a named pipe with no writer), or fall over
on a symbolic-link loop. The file is checked before it is opened (a device is never opened:
opening some has side effects) and again after (in case it was swapped in between), opened
non-blocking, and read at most ``limit_bytes + 1`` bytes.

It lives in the bottom layer because ``protocols`` and ``analysis`` both read users' files
through it and neither may import the other; it knows nothing of what the files hold.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["UnreadableFile", "read_input_file"]

_CHUNK_BYTES = 1 << 20

_NOT_REGULAR = (
    (stat.S_ISDIR, "is a directory, not a file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
)

_REASONS = {
    errno.ENOENT: "no such file",
    errno.ELOOP: "is a loop of symbolic links",
    errno.EACCES: "cannot be read (permission denied)",
    errno.EPERM: "cannot be read (permission denied)",
    errno.ENOTDIR: "a part of the path before the file name is not a folder",
    errno.ENAMETOOLONG: "the path is too long",
    errno.EISDIR: "is a directory, not a file",
}


class UnreadableFile(ValueError):
    """A path that does not lead to a regular file cellseq may read; ``reason`` says why in a
    few words ("is a named pipe (FIFO), not a regular file")."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def read_input_file(path: str | os.PathLike[str], limit_bytes: int) -> bytes:
    """The bytes of the regular file at ``path`` (symbolic links followed), at most
    ``limit_bytes`` of them; :class:`UnreadableFile` for anything else."""
    text = os.fspath(path)
    if isinstance(path, str) and text.endswith(("/", os.sep)):
        raise UnreadableFile(text, "ends with a path separator; name the file itself")
    try:
        _require_regular(text, os.stat(text), limit_bytes)
        flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                 | getattr(os, "O_BINARY", 0))
        fd = os.open(text, flags)
    except UnreadableFile:
        raise
    except OSError as exc:
        raise UnreadableFile(text, _reason(exc)) from None
    except ValueError:   # an embedded NUL character
        raise UnreadableFile(text.replace("\0", "\\0"), "the path contains a NUL character"
                             ) from None
    try:
        _require_regular(text, os.fstat(fd), limit_bytes)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(_CHUNK_BYTES, limit_bytes + 1 - total))
            if not chunk:
                break
            total += len(chunk)
            chunks.append(chunk)
            if total > limit_bytes:   # grew while being read
                raise UnreadableFile(text, _too_big(limit_bytes, None))
    except OSError as exc:
        raise UnreadableFile(text, _reason(exc)) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _require_regular(text: str, info: os.stat_result, limit_bytes: int) -> None:
    if stat.S_ISREG(info.st_mode):
        if info.st_size > limit_bytes:
            raise UnreadableFile(text, _too_big(limit_bytes, info.st_size))
        return
    for test, reason in _NOT_REGULAR:
        if test(info.st_mode):
            raise UnreadableFile(text, reason)
    raise UnreadableFile(text, "is not a regular file")


def _too_big(limit_bytes: int, size: int | None) -> str:
    said = f"is {size:,} bytes" if size is not None else "grew while being read"
    return f"{said}; the limit is {limit_bytes:,} bytes ({limit_bytes / 2**20:g} MiB)"


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()

