"""Read pickled numpy members of ``.npz`` files without letting the file run code.

The reference CGNN data format stores its graphs as a pickled dict inside ``graph_data.npz``.
Loading it with numpy's pickle support switched on would call whatever callable the pickle names (``os.system``
through ``__reduce__``), so a downloaded data set could run code on the user's machine. Here
the pickle is read with an unpickler whose :meth:`find_class` admits only what numpy's own
pickles of arrays, scalars and dtypes reference; plain containers, strings and numbers need
no globals at all. Python 2 pickles (``encoding="latin1"``, ``__builtin__`` names) load too.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

try:  # numpy >= 2 keeps the implementation in numpy._core; 1.x in numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


class UnsafePickleError(ValueError):
    """The pickle names something outside the admitted numpy/builtin set."""


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of ``bytes`` use it, with latin-1 only."""
    if encoding.replace("_", "-").lower() not in ("latin1", "latin-1", "iso-8859-1"):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


# (module, name) -> object; both the numpy 1.x names (also written by Python 2) and numpy 2's.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
# Plain types as callables (``list(...)``, ``set(...)``): they build data, never run code.
for _mod in ("builtins", "__builtin__"):
    for _t in (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, complex,
               bool):
        _ALLOWED[(_mod, _t.__name__)] = _t
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_mod}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _numeric._frombuffer


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for data only: containers, strings, numbers, numpy arrays and scalars.

    Anything else the pickle names (a function, a class, a module) raises
    :class:`UnsafePickleError` before it is imported, so nothing in the file can run code.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("a persistent id")


def loads(data: bytes, *, encoding: str = "ASCII") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()


def _read_npy(fp: io.BufferedIOBase, encoding: str) -> np.ndarray:
    """One ``.npy`` stream: plain arrays as numpy reads them, object arrays restricted."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise ValueError(f".npy format version {version} is not supported")
    if not dtype.hasobject:
        data = fp.read()
        count = int(np.prod(shape)) if shape else 1
        arr = np.frombuffer(data, dtype=dtype, count=count)
        return arr.reshape(shape, order="F" if fortran else "C")
    obj = RestrictedUnpickler(fp, encoding=encoding).load()
    if not isinstance(obj, np.ndarray):
        raise ValueError(f"an object array was expected, found {type(obj).__name__}")
    return obj


def load_npz_member(path: Path, key: str) -> np.ndarray:
    """Array ``key`` of the ``.npz`` file ``path``, unpickled without running code.

    Python 3 pickles are read as UTF-8 text; a Python 2 pickle whose ``str`` values are not
    ASCII is retried with ``latin1`` (numpy's own advice for Python 2 data). Raises
    :class:`UnsafePickleError` (the forbidden name in its message), :class:`KeyError` for a
    missing key and :class:`ValueError` / :class:`OSError` / :class:`pickle.UnpicklingError`
    for a file that is not an ``.npz``.
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ValueError(f"not a .npz (zip) file: {e}") from e
    with archive:
        member = f"{key}.npy"
        if member not in archive.namelist():
            raise KeyError(f"no array {key!r} (found {', '.join(archive.namelist()) or 'none'})")
        for encoding in ("ASCII", "latin1"):
            with archive.open(member) as raw:
                fp = io.BufferedReader(raw)  # type: ignore[arg-type]
                try:
                    return _read_npy(fp, encoding)
                except UnicodeDecodeError:
                    if encoding == "latin1":
                        raise
        raise AssertionError("unreachable")  # pragma: no cover
