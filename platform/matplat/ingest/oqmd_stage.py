"""Staging the OQMD tables while they stream past: compact arrays, and atoms on disk.

A dump delivers ``atoms`` (the largest table) before ``calculations``, ``entries``,
``formation_energies`` and ``structures``, so nothing is known about which structures
matter while atoms stream by. Atoms are therefore appended to flat binary files in the
caller's work directory (structure id, atom id, Z, x, y, z: 34 bytes per atom) and read
back in slices later, so memory does not grow with the number of atoms. The needed
columns of the other tables are kept as numpy arrays (about 60 bytes per calculation,
25 per entry, 25 per formation energy, 100 per structure). When the selection inputs are
complete before ``structures`` or ``atoms`` arrive (tables come in alphabetical order),
only the rows of the selected structures are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from matplat.ingest.batch import RowBatch
from matplat.ingest.dumpio import DumpFormatError
from matplat.ingest.oqmd_rules import LABEL_OTHER, LABEL_STANDARD, LABEL_STATIC, Tables

__all__ = ["NEEDED_COLUMNS", "OPTIONAL_COLUMNS", "READ_COLUMNS", "ATOM_DTYPE", "Staging",
           "element_numbers"]

LATTICE = ("x1", "x2", "x3", "y1", "y2", "y3", "z1", "z2", "z3")
NEEDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "atoms": ("id", "structure_id", "element_id", "x", "y", "z"),
    "calculations": ("id", "label", "entry_id", "output_id", "magmom", "band_gap", "converged"),
    "entries": ("id", "duplicate_of_id", "prototype_id"),
    "formation_energies": ("id", "calculation_id", "fit_id", "delta_e"),
    "structures": ("id", *LATTICE, "volume", "spacegroup_id"),
}
#: Columns read when the dump has them (all of the qmdb schema; test dumps may omit them):
#: ``formation_energies.stability`` is OQMD's own hull distance, kept as ``oqmd_stability``.
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"formation_energies": ("stability",)}
#: The reader's projection: needed and optional columns.
READ_COLUMNS: dict[str, tuple[str, ...]] = {
    t: (*c, *OPTIONAL_COLUMNS.get(t, ())) for t, c in NEEDED_COLUMNS.items()
}
ATOM_DTYPE = np.dtype([("sid", "<i8"), ("id", "<i8"), ("z", "<i2"), ("xyz", "<f8", (3,))])
_SELECTION_INPUTS = frozenset({"calculations", "entries", "formation_energies"})


_SYMBOLS: dict[str, int] | None = None


def element_numbers() -> dict[str, int]:
    """Element symbol → atomic number, for every element pymatgen knows (H … Og)."""
    global _SYMBOLS
    if _SYMBOLS is None:
        from pymatgen.core.periodic_table import Element

        _SYMBOLS = {e.symbol: int(e.Z) for e in Element}
    return _SYMBOLS


class Staging:
    """Accumulates the needed columns of the OQMD tables from a stream of batches."""

    def __init__(
        self,
        workdir: Path,
        source: str,
        on_inputs_complete: Callable[[Staging], np.ndarray | None] | None = None,
    ) -> None:
        self.dir = workdir
        self.source = source
        self.on_inputs_complete = on_inputs_complete
        self.tables_seen: list[str] = []
        self._current: str | None = None
        self._closed: set[str] = set()
        self.needed_structures: np.ndarray | None = None  # sorted ids, once known
        self._cols: dict[str, dict[str, list[np.ndarray]]] = {
            t: {} for t in NEEDED_COLUMNS if t != "atoms"
        }
        self.unknown_symbols: list[str] = []  # Z = -(i + 1) stands for unknown_symbols[i]
        self._unknown_index: dict[str, int] = {}
        self.prototypes: list[str] = []
        self._proto_index: dict[str, int] = {}
        self.atoms_path = workdir / "atoms.bin"
        self._atoms_fh: IO[bytes] | None = open(self.atoms_path, "wb")  # noqa: SIM115
        self.n_atoms = 0
        self.filtered_structures = False

    # -- stream bookkeeping -------------------------------------------------------------
    def add(self, batch: RowBatch) -> None:
        table = batch.table
        if table not in NEEDED_COLUMNS:
            return
        if table != self._current:
            if self._current is not None:
                self._closed.add(self._current)
            if table in self._closed:
                raise DumpFormatError(
                    f"{self.source}: rows of table `{table}` appear again after other tables; "
                    f"each table's rows must arrive together (as mysqldump writes them)"
                )
            self._current = table
            self.tables_seen.append(table)
            if (
                table in ("atoms", "structures")
                and self.needed_structures is None
                and self._closed >= _SELECTION_INPUTS
                and self.on_inputs_complete is not None
            ):
                self.needed_structures = self.on_inputs_complete(self)
        missing = [c for c in NEEDED_COLUMNS[table] if c not in batch.columns]
        if missing:
            raise DumpFormatError(
                f"{self.source}: table `{table}` lacks column(s) {', '.join(missing)} "
                f"(has: {', '.join(batch.columns)}): not the qmdb (OQMD) schema"
            )
        if len(batch) == 0:
            return
        getattr(self, f"_add_{table}")(batch)

    def _put(self, table: str, **arrays: np.ndarray) -> None:
        cols = self._cols[table]
        for k, v in arrays.items():
            cols.setdefault(k, []).append(v)

    def column(self, table: str, name: str, dtype: type, empty: float = 0) -> np.ndarray:
        parts = self._cols[table].get(name, [])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    # -- per table -------------------------------------------------------------------------
    def _codes(
        self, batch: RowBatch, name: str, mapping: Callable[[str], int], null: int
    ) -> np.ndarray:
        codes, cats = batch.codes(name)
        lut = np.array([mapping(c) for c in cats] + [null], dtype=np.int64)
        return lut[codes]  # code -1 (NULL) picks the last entry

    def _element(self, symbol: str) -> int:
        z = element_numbers().get(symbol.strip() if isinstance(symbol, str) else symbol)
        if z is not None:
            return z
        i = self._unknown_index.get(symbol)
        if i is None:
            i = self._unknown_index[symbol] = len(self.unknown_symbols)
            self.unknown_symbols.append(symbol)
        return -(i + 1)

    def _prototype(self, name: str) -> int:
        i = self._proto_index.get(name)
        if i is None:
            i = self._proto_index[name] = len(self.prototypes)
            self.prototypes.append(name)
        return i

    def _add_atoms(self, b: RowBatch) -> None:
        sid = b.array("structure_id", np.int64, null=-1)
        keep = sid >= 0
        if self.needed_structures is not None:
            keep &= _isin_sorted(sid, self.needed_structures)
        rec = np.empty(int(keep.sum()), dtype=ATOM_DTYPE)
        if len(rec) == 0:
            return
        null_z = self._element("NULL")
        z = self._codes(b, "element_id", self._element, null_z)
        rec["sid"] = sid[keep]
        rec["id"] = b.array("id", np.int64)[keep]
        rec["z"] = z[keep]
        for k, c in enumerate("xyz"):
            rec["xyz"][:, k] = b.array(c, np.float64)[keep]
        assert self._atoms_fh is not None
        rec.tofile(self._atoms_fh)
        self.n_atoms += len(rec)

    def _add_calculations(self, b: RowBatch) -> None:
        labels = {"static": LABEL_STATIC, "standard": LABEL_STANDARD}
        self._put(
            "calculations",
            id=b.array("id", np.int64),
            entry=b.array("entry_id", np.int64, null=-1),
            output=b.array("output_id", np.int64, null=-1),
            label=self._codes(b, "label", lambda s: labels.get(s, LABEL_OTHER), LABEL_OTHER).astype(
                np.int8
            ),
            converged=b.array("converged", np.int64, null=0) == 1,
            magmom=b.array("magmom", np.float64),
            band_gap=b.array("band_gap", np.float64),
        )

    def _add_entries(self, b: RowBatch) -> None:
        def prototype(name: str | bytes) -> int:
            # The reader keeps undecodable bytes as surrogates; prototype names are stored
            # as text, so they must be valid UTF-8.
            try:
                text = name.decode("utf-8") if isinstance(name, bytes) else name
                text.encode("utf-8")
            except UnicodeError:
                where = f"byte {b.byte_offset}" if b.byte_offset is not None else "a row"
                raise DumpFormatError(
                    f"{self.source}: {where} (INSERT INTO `entries`): prototype_id "
                    f"{name!r} is not valid UTF-8"
                ) from None
            return self._prototype(text)

        self._put(
            "entries",
            id=b.array("id", np.int64),
            dup=b.array("duplicate_of_id", np.int64, null=-1),
            proto=self._codes(b, "prototype_id", prototype, -1).astype(np.int32),
        )

    def _add_formation_energies(self, b: RowBatch) -> None:
        self._put(
            "formation_energies",
            id=b.array("id", np.int64),
            calc=b.array("calculation_id", np.int64, null=-1),
            standard=self._codes(b, "fit_id", lambda s: int(s == "standard"), 0).astype(bool),
            delta_e=b.array("delta_e", np.float64),
            stability=(b.array("stability", np.float64) if "stability" in b.columns
                       else np.full(len(b), np.nan)),
        )

    def _add_structures(self, b: RowBatch) -> None:
        sid = b.array("id", np.int64)
        keep = slice(None)
        if self.needed_structures is not None:
            self.filtered_structures = True
            keep = _isin_sorted(sid, self.needed_structures)
        lattice = np.stack([b.array(c, np.float64) for c in LATTICE], axis=1)
        self._put(
            "structures",
            id=sid[keep],
            lattice=lattice[keep],
            volume=b.array("volume", np.float64)[keep],
            spacegroup=b.array("spacegroup_id", np.int64, null=-1)[keep],
        )

    # -- end of stream ----------------------------------------------------------------------
    def close_atoms(self) -> None:
        if self._atoms_fh is not None:
            self._atoms_fh.close()
            self._atoms_fh = None

    def atom_slices(self, step: int) -> Iterator[np.ndarray]:
        """The staged atoms, ``step`` records at a time (plain reads: bounded memory)."""
        self.close_atoms()
        if self.n_atoms == 0:
            return
        with open(self.atoms_path, "rb") as fh:
            while True:
                part = np.fromfile(fh, dtype=ATOM_DTYPE, count=step)
                if len(part) == 0:
                    return
                yield part

    def tables(self) -> Tables:
        c = self.column
        return Tables(
            calc_id=c("calculations", "id", np.int64),
            calc_entry=c("calculations", "entry", np.int64),
            calc_label=c("calculations", "label", np.int8),
            calc_converged=c("calculations", "converged", bool),
            calc_output=c("calculations", "output", np.int64),
            entry_id=c("entries", "id", np.int64),
            entry_dup=c("entries", "dup", np.int64),
            fe_id=c("formation_energies", "id", np.int64),
            fe_calc=c("formation_energies", "calc", np.int64),
            fe_standard=c("formation_energies", "standard", bool),
            fe_delta_e=c("formation_energies", "delta_e", np.float64),
            fe_stability=c("formation_energies", "stability", np.float64),
        )


def _isin_sorted(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """``np.isin`` against an already sorted array (searchsorted, no re-sort)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[pos] == values
