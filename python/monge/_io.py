"""Shared pieces of the data loaders (ChEBI-20 TSV, speech manifests, wav, npz caches and saved maps).

Every problem with the CONTENT of a file a user hands the library is a :class:`DataFormatError` (a
ValueError) whose message starts with the file and, for text formats, the 1-based line:
``"{path}:{line}: {what}"`` (``"{path}: {what}"`` for binary formats).  Nothing read here is
unpickled: npz archives are opened with ``allow_pickle=False`` after their members' headers have
been checked (no object arrays, declared sizes that fit in the archive).
"""
from __future__ import annotations

import io
import math
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DataFormatError"]


class DataFormatError(ValueError):
    """A malformed data file: ``path``, ``line`` (1-based, None for binary formats) and ``what``
    (what was expected and what was found)."""

    def __init__(self, path, line, what):
        self.path = os.fspath(path)
        self.line = line
        self.what = what
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {what}")

    def __reduce__(self):  # picklable (e.g. across Dask workers) despite the 3-argument __init__
        return (type(self), (self.path, self.line, self.what))


def show(s, n=60):
    """repr of a field for a message, cut to n characters (a 1 MB line stays a short message)."""
    if len(s) <= n:
        return repr(s)
    return f"{s[:n]!r}... ({len(s)} characters)"


def read_bytes(path, name="path"):
    """The bytes of a file; unreadable files (missing, a directory, no permission) raise ValueError
    naming the argument and the path."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {os.fspath(path)} ({exc.strerror or exc})") from None


def decode_utf8(path, data):
    """data decoded as UTF-8 (a leading byte-order mark is dropped); an invalid byte raises a
    DataFormatError naming its line and column."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataFormatError(path, line, f"not UTF-8 text: byte 0x{data[exc.start]:02x} at column "
                                          f"{col} ({exc.reason})") from None


def text_lines(text):
    """Lines of text split at '\\n', one trailing '\\r' of each dropped (CRLF files), without the
    empty piece after a final newline; line i (0-based) of the result is line i + 1 of the file."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # nothing after the final newline (an empty file has no lines)
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


_INT = re.compile(r"[0-9]+")


def parse_int(path, line, field, s, maximum=2**63 - 1):
    """s (surrounding spaces allowed; ASCII digits only: no sign, '_' or other scripts' digits) as
    an int in [1, maximum]."""
    t = s.strip()
    if not _INT.fullmatch(t):
        raise DataFormatError(path, line, f"{field} must be a positive integer, got {show(s)}")
    if len(t) > len(str(maximum)) or int(t) > maximum:
        raise DataFormatError(path, line, f"{field} {show(t)} is too large (at most {maximum})")
    if int(t) == 0:
        raise DataFormatError(path, line, f"{field} must be positive, got {show(s)}")
    return int(t)


def resolve_inside(path, line, field, value, root):
    """root / value resolved (symlinks followed), which must stay inside root (a resolved Path):
    absolute paths, '..' escapes and symlinks leading out are rejected, as are paths the OS cannot
    represent (NUL bytes, too long)."""
    if "\0" in value:
        raise DataFormatError(path, line, f"{field} {show(value)} contains a NUL byte")
    rel = Path(value)
    if rel.is_absolute() or value.startswith("~"):
        raise DataFormatError(path, line, f"absolute {field} {show(value)}; paths are relative to "
                                          f"{root}")
    try:
        full = (root / rel).resolve()
    except (OSError, RuntimeError) as exc:  # ENAMETOOLONG, symlink loops
        raise DataFormatError(path, line, f"{field} {show(value)} cannot be resolved "
                                          f"({getattr(exc, 'strerror', None) or exc})") from None
    if full != root and root not in full.parents:
        raise DataFormatError(path, line, f"{field} {show(value)} leaves {root}")
    return full


def is_file(p):
    """Path.is_file, False also where the OS refuses the path (too long, ...)."""
    try:
        return p.is_file()
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------ npz

# what numpy/zipfile raise on a malformed npz (NotImplementedError: an unsupported member format),
# all turned into DataFormatError naming the file
_NPZ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, struct.error,
               NotImplementedError, RuntimeError)


def _check_npz_members(path, zf, keys):
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise DataFormatError(path, None, f"member {show(info.filename)} is not a .npy array")
        name = info.filename[:-4]
        if keys is not None and name not in keys:
            continue
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise DataFormatError(path, None, f"member {show(name)}: unsupported .npy format "
                                                  f"version {version}")
        if dtype.hasobject:
            raise DataFormatError(path, None, f"member {show(name)} holds Python objects (pickled "
                                              "data is never loaded)")
        if any(d < 0 for d in shape) or dtype.itemsize == 0:
            raise DataFormatError(path, None, f"member {show(name)}: bad shape {shape} or dtype "
                                              f"{dtype}")
        need = math.prod(shape) * dtype.itemsize
        if need > info.file_size:
            raise DataFormatError(path, None, f"member {show(name)} declares shape {shape} of "
                                              f"{dtype} ({need} bytes) but holds {info.file_size} "
                                              "bytes")


def read_npz(path, keys=None):
    """The arrays of an .npz archive as a dict (keys: only those names; missing ones are left out).

    Member headers are checked before loading (no object arrays, no declared size larger than the
    member), then the arrays are read with ``np.load(..., allow_pickle=False)``.  A file that is not
    a well-formed npz raises a DataFormatError naming it."""
    data = read_bytes(path)  # one read: the file cannot change between the check and the load

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            _check_npz_members(path, zf, keys)
        z = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a zip that also starts like a .npy file
            raise DataFormatError(path, None, "not an npz archive (a single .npy array)")
        with z:
            return {k: z[k] for k in z.files if keys is None or k in keys}
    except DataFormatError:
        raise
    except _NPZ_ERRORS as exc:
        raise DataFormatError(path, None, f"not a readable npz archive ({type(exc).__name__}: "
                                          f"{str(exc)[:200]})") from None
