"""OPTIMADE filters to parameterised SQLAlchemy Core conditions.

The filter string is parsed with the ``optimade`` package's grammar (v1.2, LALR) and
the tree is transformed bottom-up by :class:`SqlTransformer`, a subclass of the package's
``BaseTransformer``: every comparison becomes a SQLAlchemy expression whose values are bound
parameters, so nothing of the request is ever spliced into SQL text.

Semantics (OPTIMADE v1.2 §5.3 and §6):
- Comparisons are two-valued: a comparison on a NULL (unknown) property is false, so
  ``NOT (x = 1)`` includes entries where ``x`` is unknown, as the specification says.
- ``elements`` / ``species_at_sites`` / ``elements_ratios`` ``HAS`` [op] v, ``HAS ALL``,
  ``HAS ANY``, ``HAS ONLY`` become EXISTS / NOT EXISTS on ``material_elements`` and
  ``sites``; ``LENGTH`` uses ``nelements`` / ``nsites``.
- Properties of other providers (``_other_x``) are unknown: their comparisons are false.
- Malformed filters and unknown properties give 400; correlated list queries (``:``),
  queries inside lists of lists (lattice vectors, positions, species) and comparing a
  property with a property give 501.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from lark import Lark, Token, v_args
from lark.exceptions import UnexpectedInput, VisitError
from optimade.filterparser.lark_parser import AVAILABLE_PARSERS
from optimade.filtertransformers import BaseTransformer
from sqlalchemy.sql.elements import ColumnElement

from matplat.db.models import MaterialElement, Site
from matplat.serve.errors import ApiError, bad_request, not_implemented
from matplat.serve.fields import FIELDS, NULL_FIELDS, PREFIX, Field, T

_OPS = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}
_PY_OPS = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_REVERSED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "=", "!=": "!="}
_RATIO_TOL = 1e-9
_MAX_ONLY_SUBSETS_OF = 10  # HAS ONLY of up to 10 elements: at most 1023 subsets
_MAX_FILTER_CHARS = 10_000
GRAMMAR_VERSION = (1, 2, 0)

_local = threading.local()


class Unknown:
    """A property of another provider: every comparison on it is false (spec §5.2)."""

    def __init__(self, name: str):
        self.name = name


def grammar_path() -> str:
    """The optimade package's v1.2.0 filter grammar file."""
    return str(AVAILABLE_PARSERS[GRAMMAR_VERSION]["default"])


def _parser() -> Lark:
    """This thread's parser of the grammar, built once per thread.

    LALR, where the optimade package's ``LarkParser`` builds an Earley parser: the grammar
    has no LALR conflicts, the trees are the same (tests/serve/test_filters.py compares
    them), and a filter parses in ~1 ms instead of ~15–40 ms here, which was most of a
    filtered request's time.
    """
    parser = getattr(_local, "parser", None)
    if parser is None:
        with open(grammar_path()) as f:
            parser = _local.parser = Lark(f.read(), parser="lalr", maybe_placeholders=False)
    return parser


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", r"\1", raw[1:-1])


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise bad_request(f"last_modified compares with a timestamp string, not {value!r}")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"not an RFC 3339 timestamp: {value!r}") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc)


class SqlTransformer(BaseTransformer):
    """Lark tree of an OPTIMADE filter → a SQLAlchemy boolean expression over ``fields.T``."""

    def __init__(self, dialect: str):
        super().__init__(mapper=None)
        self.dialect = dialect

    # -- leaves -----------------------------------------------------------------
    def property(self, args: list) -> Field | Unknown:
        if len(args) > 1:
            raise not_implemented("nested properties (a.b) are not supported")
        name = str(args[0])
        field = FIELDS.get(name)
        if field is not None:
            return field
        if name in NULL_FIELDS or (name.startswith("_") and not name.startswith(f"_{PREFIX}_")):
            return Unknown(name)
        raise bad_request(f"'{name}' is not a known or searchable property of structures")

    @v_args(inline=True)
    def string(self, token: Token) -> str:
        return _unescape(str(token))

    def bool(self, args: list) -> bool:
        raise not_implemented("boolean values are not supported (no boolean property)")

    def value_list(self, args: list) -> list:
        if any(isinstance(a, Token) and a.type == "OPERATOR" for a in args):
            raise not_implemented("operators inside HAS ALL/ANY/ONLY lists are not supported")
        return list(args)

    def value_zip(self, args: list) -> None:
        raise not_implemented("correlated list queries (a:b HAS ...) are not supported")

    value_zip_list = value_zip
    set_zip_op_rhs = value_zip
    property_zip_addon = value_zip

    @v_args(inline=True)
    def not_implemented_string(self, value: Any) -> None:
        raise not_implemented("comparing a string constant with a constant is not supported")

    # -- structure ----------------------------------------------------------------
    def filter(self, args: list) -> ColumnElement | None:
        return args[0] if args else None

    def expression(self, args: list) -> ColumnElement:
        return args[0] if len(args) == 1 else sa.or_(*args)

    def expression_clause(self, args: list) -> ColumnElement:
        return args[0] if len(args) == 1 else sa.and_(*args)

    def expression_phrase(self, args: list) -> ColumnElement:
        if len(args) == 2:  # NOT phrase: comparisons are two-valued, so SQL NOT is exact
            return sa.not_(args[1])
        return args[0]

    @v_args(inline=True)
    def comparison(self, value: ColumnElement) -> ColumnElement:
        return value

    # -- right-hand sides: small tuples resolved once the property is known ------
    @v_args(inline=True)
    def value_op_rhs(self, operator: Token, value: Any) -> tuple:
        return ("op", str(operator), value)

    def known_op_rhs(self, args: list) -> tuple:
        return ("known", str(args[1]) == "KNOWN")

    def fuzzy_string_op_rhs(self, args: list) -> tuple:
        return ("fuzzy", str(args[0]), args[-1])

    def set_op_rhs(self, args: list) -> tuple:
        words = [str(a) for a in args[1:] if isinstance(a, Token)]
        if words and words[0] in ("ALL", "ANY", "ONLY"):
            return ("has", words[0], args[-1])
        operator = words[0] if words and words[0] in _OPS else "="
        return ("has", "ONE", [args[-1]], operator)

    def length_op_rhs(self, args: list) -> tuple:
        operator = str(args[1]) if len(args) == 3 else "="
        return ("length", operator, args[-1])

    def constant_first_comparison(self, args: list) -> ColumnElement:
        constant, operator, prop = args
        if not isinstance(prop, Field | Unknown):
            raise not_implemented("comparing two constants is not supported")
        return self._compare(prop, ("op", _REVERSED[str(operator)], constant))

    @v_args(inline=True)
    def property_first_comparison(self, prop: Field | Unknown, rhs: tuple) -> ColumnElement:
        return self._compare(prop, rhs)

    # -- the SQL ----------------------------------------------------------------
    def _compare(self, prop: Field | Unknown, rhs: tuple) -> ColumnElement:
        if isinstance(prop, Unknown):
            return sa.true() if rhs == ("known", False) else sa.false()
        if rhs[0] != "known" and len(rhs) > 2 and isinstance(rhs[2], Field | Unknown):
            raise not_implemented("comparing a property with another property is not supported")
        if prop.type == "list":
            return self._list(prop, rhs)
        col = prop.sql()
        if rhs[0] == "known":
            return col.is_not(None) if rhs[1] else col.is_(None)
        if rhs[0] == "op":
            _, operator, value = rhs
            return self._scalar(prop, col, operator, value)
        if rhs[0] == "fuzzy":
            if prop.type != "string":
                raise bad_request(f"{rhs[1]} applies to strings; {prop.name} is a {prop.type}")
            return sa.and_(col.is_not(None), self._fuzzy(col, rhs[1], self._string(prop, rhs[2])))
        raise bad_request(f"{prop.name} is a {prop.type}, not a list: HAS/LENGTH do not apply")

    def _string(self, prop: Field, value: Any) -> str:
        if not isinstance(value, str):
            raise bad_request(f"{prop.name} is a string; compare it with a string, not {value!r}")
        return value

    def _scalar(self, prop: Field, col: ColumnElement, operator: str, value: Any) -> ColumnElement:
        if prop.name == "id":
            return self._id(operator, self._string(prop, value))
        if prop.type == "string":
            value = self._string(prop, value)
        elif prop.type == "timestamp":
            ts = _timestamp(value)
            return sa.and_(col.is_not(None), self._timestamp(col, operator, ts))
        elif prop.type in ("integer", "float") and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise bad_request(f"{prop.name} is a number; compare it with a number, not {value!r}")
        return sa.and_(col.is_not(None), _OPS[operator](col, value))

    def _id(self, operator: str, value: str) -> ColumnElement:
        m_id = T.m.c.id
        numeric = re.fullmatch(r"[1-9][0-9]{0,17}|0", value) is not None
        if operator == "=":
            return m_id == int(value) if numeric else sa.false()
        if operator == "!=":
            return m_id != int(value) if numeric else sa.true()
        return _OPS[operator](sa.cast(m_id, sa.String(32)), value)

    def _timestamp(self, col: ColumnElement, operator: str, ts: datetime) -> ColumnElement:
        if self.dialect == "sqlite":
            # SQLite stores "YYYY-MM-DD HH:MM:SS[.ffffff]" text; compare as text in that format.
            text = ts.strftime("%Y-%m-%d %H:%M:%S") + (f".{ts.microsecond:06d}" if ts.microsecond else "")
            return _OPS[operator](sa.type_coerce(col, sa.String), text)
        if self.dialect in ("mysql", "mariadb"):
            ts = ts.replace(tzinfo=None)
        return _OPS[operator](col, ts)

    def _fuzzy(self, col: ColumnElement, how: str, value: str) -> ColumnElement:
        if self.dialect == "sqlite":  # LIKE ignores ASCII case in SQLite; OPTIMADE's does not
            n = len(value)
            if how == "CONTAINS":
                return sa.func.instr(col, value) > 0
            if how == "STARTS":
                return sa.func.substr(col, 1, n) == value
            return sa.and_(sa.func.length(col) >= n, sa.func.substr(col, -n) == value) if n else sa.true()
        if how == "CONTAINS":
            return col.contains(value, autoescape=True)
        if how == "STARTS":
            return col.startswith(value, autoescape=True)
        return col.endswith(value, autoescape=True)

    # -- lists ------------------------------------------------------------------
    def _list(self, prop: Field, rhs: tuple) -> ColumnElement:
        kind = prop.list_kind
        if rhs[0] == "known":
            return sa.true() if rhs[1] else sa.false()  # every list is always present
        if kind == "unsupported":
            raise not_implemented(f"queries on {prop.name} are not supported")
        if rhs[0] == "length":
            _, operator, n = rhs
            if not isinstance(n, int):
                raise bad_request("LENGTH takes an integer")
            if kind in ("elements", "elements_ratios"):
                return _OPS[operator](T.s.c.nelements, n)
            if kind == "species_at_sites":
                return _OPS[operator](T.s.c.nsites, n)
            size = 3 if kind == "dimension_types" else 0
            return sa.true() if _PY_OPS[operator](size, n) else sa.false()
        if rhs[0] != "has":
            raise bad_request(f"{prop.name} is a list: use HAS, HAS ALL/ANY/ONLY or LENGTH")
        how, values = rhs[1], rhs[2]
        operator = rhs[3] if len(rhs) > 3 else "="
        if any(isinstance(v, Field | Unknown) for v in values):
            raise not_implemented("comparing a property with another property is not supported")
        if kind in ("dimension_types", "structure_features"):
            return self._constant_list([1, 1, 1] if kind == "dimension_types" else [], how,
                                       values, operator)
        if kind == "elements_ratios":
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise bad_request(f"elements_ratios holds numbers, not {v!r}")
        else:
            for v in values:
                if not isinstance(v, str):
                    raise bad_request(f"{prop.name} holds strings, not {v!r}")
        member, matches, parent = self._member(kind)
        if how == "ONE":
            return sa.exists().where(parent, matches(operator, values[0]))
        if how == "ALL":
            return sa.and_(*(sa.exists().where(parent, matches("=", v)) for v in values))
        if how == "ANY":
            return sa.or_(*(sa.exists().where(parent, matches("=", v)) for v in values))
        # ONLY: no member outside the list (and, as every structure has sites, at least one)
        if kind == "elements" and len(set(values)) <= _MAX_ONLY_SUBSETS_OF:
            # the sorted element list is one of the list's subsets: an indexed IN
            symbols = sorted(set(values))
            subsets = [",".join(c) for k in range(1, len(symbols) + 1)
                       for c in itertools.combinations(symbols, k)]
            return T.s.c.elements.in_(subsets)
        inside = sa.or_(*(matches("=", v) for v in values))
        return sa.not_(sa.exists().where(parent, sa.not_(inside)))

    def _member(self, kind: str):  # type: ignore[no-untyped-def]
        if kind == "species_at_sites":
            site = Site.__table__
            return site, lambda op, v: _OPS[op](site.c.element, v), site.c.structure_id == T.s.c.structure_id
        me = MaterialElement.__table__
        parent = me.c.material_id == T.m.c.id
        if kind == "elements":
            return me, lambda op, v: _OPS[op](me.c.element, v), parent
        ratio = sa.cast(me.c.count, sa.Double) / T.s.c.nsites

        def ratio_matches(op: str, v: float) -> ColumnElement:
            if op == "=":
                return sa.func.abs(ratio - v) <= _RATIO_TOL
            if op == "!=":
                return sa.func.abs(ratio - v) > _RATIO_TOL
            return _OPS[op](ratio, v)

        return me, ratio_matches, parent

    @staticmethod
    def _constant_list(items: list, how: str, values: list, operator: str) -> ColumnElement:
        if how == "ONE":
            hit = any(_PY_OPS[operator](i, values[0]) for i in items if type(i) is type(values[0]))
        elif how == "ALL":
            hit = all(v in items for v in values)
        elif how == "ANY":
            hit = any(v in items for v in values)
        else:
            hit = all(i in values for i in items)
        return sa.true() if hit else sa.false()


@functools.lru_cache(maxsize=1024)
def parse_filter(text: str, dialect: str) -> ColumnElement | None:
    """The SQL condition of an OPTIMADE filter string (None for an empty filter).

    Raises :class:`ApiError` (400 malformed or unknown property, 501 unsupported feature).
    Results are cached per (filter, dialect): paging through one filter parses it once
    (an expression is immutable and shared safely between threads; errors are not cached).
    """
    if not text or not text.strip():
        return None
    if len(text) > _MAX_FILTER_CHARS:
        raise bad_request(f"filter longer than {_MAX_FILTER_CHARS} characters")
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        where = f"column {e.column}" if e.column and e.column > 0 else "its end"
        raise bad_request(
            f"cannot parse the filter at {where}: {_context(text, e.pos_in_stream)}"
        ) from None
    except Exception as e:  # noqa: BLE001 - lark's other errors are malformed input too
        raise bad_request(f"cannot parse the filter: {type(e).__name__}") from None
    try:
        return SqlTransformer(dialect).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, ApiError):
            raise e.orig_exc from None
        if isinstance(e.orig_exc, NotImplementedError):
            raise not_implemented(str(e.orig_exc)) from None
        raise bad_request(f"invalid filter: {e.orig_exc}") from None


def _context(text: str, pos: int | None) -> str:
    if pos is None or pos < 0:
        return f"...{text[-40:]}<here>"
    return f"...{text[max(0, pos - 20):pos]!s}<here>{text[pos:pos + 20]!s}..."
