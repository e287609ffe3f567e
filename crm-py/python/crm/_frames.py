"""DataFrame helpers used by ``Engine.import_orders`` and the ``*_frame`` methods.

Internal: turns the columns of a pandas / polars DataFrame, a pyarrow Table,
any object with the Arrow C stream interface, or a dict of lists into plain
Python lists, and builds result frames. Timezone-aware timestamp columns are
passed on as integer microseconds since the epoch (UTC); naive timestamp
columns raise ``ValidationError`` (the one rule for naive times everywhere).
No loyalty rule lives here: the rows are converted and checked in Rust and
decided by the core engine.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._crm import ValidationError

COLUMNS = ("member_id", "order_id", "placed_at", "amount", "paid_at", "status", "channel", "store", "currency")
REQUIRED = ("member_id", "order_id", "placed_at", "amount")
TIME_COLUMNS = ("placed_at", "paid_at")


def _invalid(field: str, reason: str) -> ValidationError:
    err = ValidationError(f"invalid {field}: {reason}")
    err.field = field  # type: ignore[misc]
    return err


def _naive(field: str) -> ValidationError:
    return _invalid(
        field,
        "timestamp column has no time zone (naive datetimes are rejected; "
        "localize it first, e.g. series.dt.tz_localize('UTC'))",
    )


def _lib(name: str) -> Any:
    """Import an optional frame library (typed as ``Any``: no stubs needed)."""
    return importlib.import_module(name)


def _root(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


# ----- per library ---------------------------------------------------------------


def _pandas_column(s: Any, name: str) -> Tuple[List[Any], bool]:
    pd = _lib("pandas")

    dtype = s.dtype
    if name in TIME_COLUMNS:
        if isinstance(dtype, pd.DatetimeTZDtype):
            utc = s.dt.tz_convert("UTC").dt.as_unit("us")
            values = utc.array.asi8.tolist()
            mask = s.isna().to_numpy()
            if mask.any():
                values = [None if m else v for v, m in zip(values, mask)]
            return values, True
        if pd.api.types.is_datetime64_dtype(dtype):
            raise _naive(name)
        if isinstance(dtype, pd.ArrowDtype):
            pa = _lib("pyarrow")

            return _arrow_column(pa.chunked_array([pa.array(s)]), name)
    if name == "amount" and pd.api.types.is_float_dtype(dtype) and not isinstance(dtype, pd.ArrowDtype):
        # NaN stays NaN: the money rule rejects it for that row.
        return s.tolist(), False
    if pd.api.types.is_integer_dtype(dtype) and not s.hasnans:
        return s.tolist(), False
    return s.astype(object).where(s.notna(), None).tolist(), False


def _polars_column(s: Any, name: str) -> Tuple[List[Any], bool]:
    pl = _lib("polars")

    dtype = s.dtype
    if name in TIME_COLUMNS and isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            raise _naive(name)
        return s.dt.convert_time_zone("UTC").dt.epoch("us").to_list(), True
    if name in TIME_COLUMNS and dtype == pl.Date:
        raise _naive(name)
    return s.to_list(), False


def _arrow_column(col: Any, name: str) -> Tuple[List[Any], bool]:
    pa = _lib("pyarrow")
    pc = _lib("pyarrow.compute")

    t = col.type
    if name in TIME_COLUMNS and pa.types.is_timestamp(t):
        if t.tz is None:
            raise _naive(name)
        us = pc.cast(col, pa.timestamp("us", t.tz), safe=False)
        return pc.cast(us, pa.int64()).to_pylist(), True
    if name in TIME_COLUMNS and (pa.types.is_date(t)):
        raise _naive(name)
    return col.to_pylist(), False


def _to_arrow(frame: Any) -> Any:
    """A pyarrow Table from an Arrow C stream object (pyarrow, else via polars)."""
    try:
        pa = _lib("pyarrow")
    except ImportError:
        pa = None
    if pa is not None:
        if isinstance(frame, pa.Table):
            return frame
        if isinstance(frame, pa.RecordBatch):
            return pa.Table.from_batches([frame])
        return pa.table(frame)
    try:
        pl = _lib("polars")
    except ImportError:
        raise ImportError(
            "importing from an Arrow C stream object needs pyarrow or polars; pip install pyarrow"
        ) from None
    return pl.DataFrame(frame)


def order_columns(
    frame: Any, columns: Optional[Mapping[str, str]] = None
) -> Tuple[int, Dict[str, List[Any]], List[str]]:
    """Read the order columns of ``frame``: ``(rows, {name: values}, [micros columns])``."""
    rename: Dict[str, str] = {}
    if columns is not None:
        if not isinstance(columns, Mapping):
            raise _invalid("columns", f"must be a dict, not {type(columns).__name__}")
        for k, v in columns.items():
            if k not in COLUMNS:
                raise _invalid(f"columns.{k}", f"unknown column; expected one of {', '.join(COLUMNS)}")
            if not isinstance(v, str):
                raise _invalid(f"columns.{k}", f"must be a str, not {type(v).__name__}")
            rename[k] = v

    root = _root(frame)
    if root == "pandas" and hasattr(frame, "columns") and hasattr(frame, "dtypes"):
        names = [str(c) for c in frame.columns]

        def get(col: str, name: str) -> Tuple[List[Any], bool]:
            return _pandas_column(frame[col], name)

        rows = len(frame.index)
    elif root == "polars" and hasattr(frame, "get_column"):
        if type(frame).__name__ == "LazyFrame":
            frame = frame.collect()
        names = list(frame.columns)

        def get(col: str, name: str) -> Tuple[List[Any], bool]:
            return _polars_column(frame.get_column(col), name)

        rows = frame.height
    elif isinstance(frame, Mapping):
        names = [str(k) for k in frame.keys()]
        data = frame

        def get(col: str, name: str) -> Tuple[List[Any], bool]:
            values = data[col]
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise _invalid(col, "must be a list of values")
            return list(values), False

        first: Any = next(iter(frame.values()), [])
        rows = len(list(first)) if hasattr(first, "__iter__") else 0
    elif hasattr(frame, "__arrow_c_stream__") or _root(frame) == "pyarrow":
        table = _to_arrow(frame)
        if _root(table) == "polars":
            return order_columns(table, columns)
        names = list(table.column_names)

        def get(col: str, name: str) -> Tuple[List[Any], bool]:
            return _arrow_column(table.column(col), name)

        rows = table.num_rows
    else:
        raise _invalid(
            "frame",
            "must be a pandas or polars DataFrame, a pyarrow Table, an object with "
            f"__arrow_c_stream__, or a dict of column lists, not {type(frame).__name__}",
        )

    out: Dict[str, List[Any]] = {}
    micros: List[str] = []
    for name in COLUMNS:
        col = rename.get(name, name)
        if col not in names:
            if name in REQUIRED:
                raise _invalid(col, "column is missing")
            continue
        values, is_micros = get(col, name)
        if len(values) != rows:
            raise _invalid(col, f"has {len(values)} values, expected {rows}")
        out[name] = values
        if is_micros:
            micros.append(name)
    return rows, out, micros


def make_frame(data: Dict[str, List[Any]], backend: Any = None) -> Any:
    """Build a frame from a dict of columns: pandas (default), polars, pyarrow or dict."""
    if backend is None:
        backend = "pandas"
    if backend == "dict":
        return data
    if backend == "pandas":
        try:
            pd = _lib("pandas")
        except ImportError:
            raise ImportError("backend='pandas' needs pandas; pip install pandas") from None
        return pd.DataFrame(data)
    if backend == "polars":
        try:
            pl = _lib("polars")
        except ImportError:
            raise ImportError("backend='polars' needs polars; pip install polars") from None
        return pl.DataFrame(data)
    if backend == "pyarrow":
        try:
            pa = _lib("pyarrow")
        except ImportError:
            raise ImportError("backend='pyarrow' needs pyarrow; pip install pyarrow") from None
        return pa.table(data)
    raise _invalid("backend", f"must be 'pandas', 'polars', 'pyarrow' or 'dict', not {backend!r}")
