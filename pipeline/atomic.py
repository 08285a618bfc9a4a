"""Atomic file writes and safe ``.npz`` loading.

Every writer goes through one temporary-file mechanism (:func:`atomic_write_bytes`,
:func:`atomic_text_stream`): the data goes to a temporary file
in the destination folder (same file system), is flushed to disk, then renamed over
the destination with :func:`os.replace`, so a reader never sees a half-written file.
Parent folders are created. ``.npz`` files are always read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import zipfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def _atomic_stream(path: str | os.PathLike, mode: str, **open_args):
    """A stream (``open`` ``mode``: ``"wb"`` or ``"w"``) whose content replaces ``path``
    atomically when the block ends without error; on an error the temporary file is
    removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with mode 0o666 honours the umask (tempfile.mkstemp would leave 0o600).
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(handle, mode, **open_args) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path written."""
    with _atomic_stream(path, "wb") as stream:
        stream.write(data)
    return Path(path)


def atomic_text_stream(path: str | os.PathLike):
    """A text stream (UTF-8) whose content replaces ``path`` atomically when the block ends
    without error: for files too large to build in memory first. On an error the
    temporary file is removed and ``path`` is untouched."""
    return _atomic_stream(path, "w", encoding="utf-8", newline="")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Save ``arrays`` uncompressed as an ``.npz`` (what :func:`numpy.savez` writes) to
    ``path`` atomically.

    The path is used as given (no ``.npz`` suffix is appended). Object arrays are
    refused, since :func:`load_npz` never unpickles. The zip entries carry a fixed
    timestamp (numpy's own writer stamps the current time), so the same arrays always
    give the same bytes: a re-run, or a resumed run, can be compared byte for byte.
    """
    for name, array in arrays.items():
        if np.asarray(array).dtype.hasobject:
            raise ValueError(f"{path}: array '{name}' has dtype object, which cannot be saved without pickle")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIME)
            entry.external_attr = 0o644 << 16
            with archive.open(entry, "w", force_zip64=True) as stream:
                np.lib.format.write_array(stream, np.asanyarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buffer.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, loaded into memory (``allow_pickle=False``).

    Raises :class:`FileNotFoundError` or :class:`ValueError` naming the file when it is
    missing, not an ``.npz`` archive, or holds pickled objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single .npy array, not an .npz archive")
        with loaded as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: cannot read as an .npz archive: {error}") from error
