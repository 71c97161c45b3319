"""The part of OQMD's qmdb schema (qmpy's Django models) that matplat reads or writes.

``QMDB_DDL`` holds the CREATE TABLE statements exactly as Django emits them (copied from
``tests/data/qmdb_ddl.sql``, the project's reference; a test keeps the two equal). Columns
are in model field order, which is the order of the values in each row of an OQMD dump.
The dump reader uses :func:`qmdb_columns` when a dump lacks a table's CREATE TABLE
(``--no-create-info``), and the synthetic dump generator renders the tables in
mysqldump's layout with :func:`mysqldump_create_table`.
"""

from __future__ import annotations

import re
from functools import cache

from matplat.ingest.reader import parse_create_table

__all__ = ["QMDB_DDL", "qmdb_columns", "mysqldump_create_table"]

# fmt: off
QMDB_DDL: dict[str, str] = {
    "atoms": (
        "CREATE TABLE `atoms` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `structure_id` integer NULL, `site_id` integer NULL, `element_id` varchar(9) NULL, `ox` integer NULL, `x` double precision NOT NULL, `y` double precision NOT NULL, `z` double precision NOT NULL, `fx` double precision NULL, `fy` double precision NULL, `fz` double precision NULL, `magmom` double precision NULL, `charge` double precision NULL, `volume` double precision NULL, `occupancy` double precision NOT NULL, `wyckoff_id` integer NULL);"
    ),
    "calculations": (
        "CREATE TABLE `calculations` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `configuration` varchar(15) NULL, `label` varchar(63) NOT NULL, `entry_id` integer NULL, `path` varchar(255) NULL, `composition_id` varchar(255) NULL, `natoms` integer NULL, `input_id` integer NULL, `settings` longtext NULL, `output_id` integer NULL, `energy` double precision NULL, `energy_pa` double precision NULL, `magmom` double precision NULL, `magmom_pa` double precision NULL, `dos_id` integer NULL, `band_gap` double precision NULL, `irreducible_kpoints` double precision NULL, `attempt` integer NULL, `nsteps` integer NULL, `converged` bool NULL, `runtime` double precision NULL);"
    ),
    "compositions": (
        "CREATE TABLE `compositions` (`formula` varchar(255) NOT NULL PRIMARY KEY, `generic` varchar(255) NULL, `element_list` varchar(255) NULL, `ntypes` integer NULL, `mass` double precision NULL, `meidema` double precision NULL, `structure_id` integer NULL);"
    ),
    "dos": (
        "CREATE TABLE `dos` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `entry_id` integer NULL, `efermi` double precision NOT NULL, `gap` double precision NULL, `data` longtext NULL, `file` varchar(128) NULL);"
    ),
    "entries": (
        "CREATE TABLE `entries` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `path` varchar(255) NOT NULL UNIQUE, `label` varchar(20) NULL, `duplicate_of_id` integer NULL, `ntypes` integer NULL, `natoms` integer NULL, `composition_id` varchar(255) NULL, `reference_id` integer NULL, `prototype_id` varchar(63) NULL);"
    ),
    "formation_energies": (
        "CREATE TABLE `formation_energies` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `composition_id` varchar(255) NULL, `entry_id` integer NULL, `calculation_id` integer NULL, `description` varchar(20) NULL, `fit_id` varchar(255) NULL, `stability` double precision NULL, `delta_e` double precision NULL);"
    ),
    "meta_data": (
        "CREATE TABLE `meta_data` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `type` varchar(15) NOT NULL, `value` longtext NOT NULL);"
    ),
    "spacegroups": (
        "CREATE TABLE `spacegroups` (`number` integer NOT NULL PRIMARY KEY, `hm` varchar(30) NULL, `hall` varchar(30) NULL, `pearson` varchar(30) NOT NULL, `schoenflies` varchar(30) NOT NULL, `lattice_system` varchar(20) NOT NULL, `centrosymmetric` bool NOT NULL);"
    ),
    "structures": (
        "CREATE TABLE `structures` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `entry_id` integer NULL, `reference_id` integer NULL, `label` varchar(63) NOT NULL, `prototype_id` varchar(63) NULL, `measured` bool NOT NULL, `composition_id` varchar(255) NULL, `natoms` integer NULL, `nsites` integer NULL, `ntypes` integer NULL, `x1` double precision NOT NULL, `x2` double precision NOT NULL, `x3` double precision NOT NULL, `y1` double precision NOT NULL, `y2` double precision NOT NULL, `y3` double precision NOT NULL, `z1` double precision NOT NULL, `z2` double precision NOT NULL, `z3` double precision NOT NULL, `volume` double precision NULL, `volume_pa` double precision NULL, `sxx` double precision NOT NULL, `syy` double precision NOT NULL, `szz` double precision NOT NULL, `sxy` double precision NOT NULL, `syz` double precision NOT NULL, `szx` double precision NOT NULL, `spacegroup_id` integer NULL, `energy` double precision NULL, `energy_pa` double precision NULL, `magmom` double precision NULL, `magmom_pa` double precision NULL, `delta_e` double precision NULL, `meta_stability` double precision NULL);"
    ),
}
# fmt: on


@cache
def qmdb_columns(table: str) -> tuple[tuple[str, str], ...]:
    """``((column, sql type), …)`` of a qmdb table, in row order."""
    parsed = parse_create_table(QMDB_DDL[table].encode())
    assert parsed is not None
    return tuple(parsed[1])


_DJANGO_TO_MYSQL = (
    (re.compile(r"^integer\b"), "int(11)"),
    (re.compile(r"^double precision\b"), "double"),
    (re.compile(r"^bool\b"), "tinyint(1)"),
)


def mysqldump_create_table(table: str, charset: str = "utf8") -> str:
    """The CREATE TABLE of a qmdb table as MySQL 5.7's mysqldump prints it (no foreign keys)."""
    lines = []
    primary = None
    uniques = []
    for name, sql_type in qmdb_columns(table):
        t = sql_type
        base = t
        for rx, rep in _DJANGO_TO_MYSQL:
            base = rx.sub(rep, base)
        nullable = " NOT NULL" not in f" {t}"
        col_type = re.split(r"\s+(?:AUTO_INCREMENT|NOT\s+NULL|NULL|PRIMARY|UNIQUE)\b", base)[0]
        col = f"  `{name}` {col_type}" + (" DEFAULT NULL" if nullable else " NOT NULL")
        if "AUTO_INCREMENT" in t:
            col += " AUTO_INCREMENT"
        if "PRIMARY KEY" in t:
            primary = name
        elif re.search(r"\bUNIQUE\b", t):
            uniques.append((f"{name}", [name]))
        lines.append(col)
    if primary:
        lines.append(f"  PRIMARY KEY (`{primary}`)")
    if table == "structures":  # Django's unique_together, added by ALTER TABLE in the DDL
        uniques.append(("structures_entry_id_label_e02aa97a_uniq", ["entry_id", "label"]))
    for key, cols in uniques:
        lines.append(f"  UNIQUE KEY `{key}` (" + ",".join(f"`{c}`" for c in cols) + ")")
    return (
        f"CREATE TABLE `{table}` (\n"
        + ",\n".join(lines)
        + f"\n) ENGINE=InnoDB DEFAULT CHARSET={charset};"
    )
