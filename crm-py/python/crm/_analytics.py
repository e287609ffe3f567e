"""DataFrame helpers of ``crm.rfm``, ``crm.summary``, the value models and ``Rule.evaluate``.

Internal, like ``crm._frames``: reads named columns of a pandas / polars
DataFrame, a pyarrow Table or a dict of lists into plain Python lists, and
builds results of the same kind as the input (a frame, or a Series aligned
with the input rows). Timezone-aware timestamp columns are passed on as
integer microseconds since the epoch (UTC); naive timestamp columns raise
``ValidationError``. Columns read as calendar dates (``date_names``) may be
date columns, or naive timestamps at midnight. Everything else (money, ids,
types) is checked in Rust; no analytics lives here.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ._frames import _invalid, _lib, _naive, _root, _to_arrow, make_frame


def kind(frame: Any) -> str:
    """``"pandas"``, ``"polars"``, ``"pyarrow"`` or ``"dict"`` for a frame; ``""`` for anything else."""
    root = _root(frame)
    if root == "pandas" and hasattr(frame, "columns") and hasattr(frame, "dtypes"):
        return "pandas"
    if root == "polars" and hasattr(frame, "columns") and type(frame).__name__ in ("DataFrame", "LazyFrame"):
        return "polars"
    if root == "pyarrow" and type(frame).__name__ in ("Table", "RecordBatch"):
        return "pyarrow"
    if isinstance(frame, Mapping):
        return "dict"
    if hasattr(frame, "__arrow_c_stream__"):
        return "pyarrow"
    return ""


def _frame(frame: Any) -> Tuple[str, Any]:
    k = kind(frame)
    if k == "":
        raise _invalid(
            "frame",
            "must be a pandas or polars DataFrame, a pyarrow Table, an object with "
            f"__arrow_c_stream__, or a dict of column lists, not {type(frame).__name__}",
        )
    if k == "polars" and type(frame).__name__ == "LazyFrame":
        frame = frame.collect()
    if k == "pyarrow":
        frame = _to_arrow(frame)
        if _root(frame) == "polars":
            k = "polars"
    return k, frame


def column_names(frame: Any) -> List[str]:
    """The column names of a frame."""
    k, frame = _frame(frame)
    if k == "pyarrow":
        return [str(c) for c in frame.column_names]
    if k == "dict":
        return [str(c) for c in frame.keys()]
    return [str(c) for c in frame.columns]


def _midnights(name: str, values: List[Any]) -> List[Any]:
    """Naive midnight datetimes of a date column as ``date`` objects."""
    out: List[Any] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        if (v.hour, v.minute, v.second, v.microsecond) != (0, 0, 0, 0) or int(getattr(v, "nanosecond", 0)) != 0:
            raise _invalid(name, "is a date column but holds times of day; pass dates")
        out.append(v.date())
    return out


def _pandas(s: Any, name: str, time: bool, date: bool) -> Tuple[List[Any], bool]:
    pd = _lib("pandas")
    dtype = s.dtype
    if isinstance(dtype, pd.ArrowDtype):
        pa = _lib("pyarrow")
        return _arrow(pa.chunked_array([pa.array(s)]), name, time, date)
    if isinstance(dtype, pd.DatetimeTZDtype):
        if date:
            raise _invalid(name, "is a date column but holds timestamps with a time zone; pass dates")
        utc = s.dt.tz_convert("UTC").dt.as_unit("us")
        values = utc.array.asi8.tolist()
        mask = s.isna().to_numpy()
        if mask.any():
            values = [None if m else v for v, m in zip(values, mask)]
        return values, True
    if pd.api.types.is_datetime64_dtype(dtype):
        if date:
            return _midnights(name, s.astype(object).where(s.notna(), None).tolist()), False
        raise _naive(name)
    if pd.api.types.is_float_dtype(dtype) or (pd.api.types.is_integer_dtype(dtype) and not s.hasnans):
        # NaN stays NaN: missing for a rule, an error for an amount.
        return s.tolist(), False
    if pd.api.types.is_bool_dtype(dtype) and not s.hasnans:
        return s.tolist(), False
    return s.astype(object).where(s.notna(), None).tolist(), False


def _polars(s: Any, name: str, time: bool, date: bool) -> Tuple[List[Any], bool]:
    pl = _lib("polars")
    dtype = s.dtype
    if isinstance(dtype, pl.Datetime):
        if date:
            if dtype.time_zone is not None:
                raise _invalid(name, "is a date column but holds timestamps with a time zone; pass dates")
            return _midnights(name, s.to_list()), False
        if dtype.time_zone is None:
            raise _naive(name)
        return s.dt.convert_time_zone("UTC").dt.epoch("us").to_list(), True
    return s.to_list(), False


def _arrow(col: Any, name: str, time: bool, date: bool) -> Tuple[List[Any], bool]:
    pa = _lib("pyarrow")
    pc = _lib("pyarrow.compute")
    t = col.type
    if pa.types.is_timestamp(t):
        if date:
            if t.tz is not None:
                raise _invalid(name, "is a date column but holds timestamps with a time zone; pass dates")
            return _midnights(name, col.to_pylist()), False
        if t.tz is None:
            raise _naive(name)
        us = pc.cast(col, pa.timestamp("us", t.tz), safe=False)
        return pc.cast(us, pa.int64()).to_pylist(), True
    return col.to_pylist(), False


def read_columns(
    frame: Any,
    names: Sequence[str],
    time_names: Sequence[str] = (),
    date_names: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> Tuple[str, int, Dict[str, List[Any]], List[str]]:
    """Read columns ``names`` of ``frame``: ``(kind, rows, {name: values}, [micros columns])``.

    A missing column raises ``ValidationError`` naming it, unless it is in ``optional``.
    """
    k, frame = _frame(frame)
    present = column_names(frame)
    if k == "pandas":
        rows = len(frame.index)

        def get(col: str, time: bool, date: bool) -> Tuple[List[Any], bool]:
            return _pandas(frame[col], col, time, date)

    elif k == "polars":
        rows = frame.height

        def get(col: str, time: bool, date: bool) -> Tuple[List[Any], bool]:
            return _polars(frame.get_column(col), col, time, date)

    elif k == "pyarrow":
        rows = frame.num_rows

        def get(col: str, time: bool, date: bool) -> Tuple[List[Any], bool]:
            return _arrow(frame.column(col), col, time, date)

    else:
        data = frame

        def get(col: str, time: bool, date: bool) -> Tuple[List[Any], bool]:
            values = data[col]
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise _invalid(col, "must be a list of values")
            if hasattr(values, "to_list"):
                return values.to_list(), False
            if hasattr(values, "tolist"):
                return values.tolist(), False
            return list(values), False

        first: Any = next(iter(frame.values()), [])
        rows = len(list(first)) if hasattr(first, "__iter__") and not isinstance(first, (str, bytes)) else 0

    out: Dict[str, List[Any]] = {}
    micros: List[str] = []
    for col in names:
        if col not in present:
            if col in optional:
                continue
            raise _invalid(col, "column is missing")
        values, is_micros = get(col, col in time_names, col in date_names)
        if len(values) != rows:
            raise _invalid(col, f"has {len(values)} values, expected {rows}")
        out[col] = values
        if is_micros:
            micros.append(col)
    return k, rows, out, micros


SUMMARY_ALIASES: Dict[str, Tuple[str, ...]] = {
    "frequency": ("frequency", "x"),
    "recency": ("recency", "t_x"),
    "T": ("T",),
    "monetary_value": ("monetary_value", "zbar", "monetary"),
}


def summary_columns(frame: Any, wanted: Sequence[str]) -> Tuple[str, int, Dict[str, List[Any]]]:
    """Read summary columns (``frequency``/``x``, ``recency``/``t_x``, ``T``,
    ``monetary_value``/``zbar``/``monetary``) under their canonical names."""
    present = column_names(frame)
    chosen: Dict[str, str] = {}
    for key in wanted:
        alts = SUMMARY_ALIASES[key]
        col = next((a for a in alts if a in present), None)
        if col is None:
            raise _invalid(key, f"column is missing (expected one of {', '.join(alts)})")
        chosen[key] = col
    k, rows, data, _ = read_columns(frame, list(chosen.values()))
    return k, rows, {key: data[col] for key, col in chosen.items()}


def is_frame(obj: Any) -> bool:
    """True for a DataFrame, a pyarrow Table or a dict of columns."""
    return kind(obj) != "" and not _is_vector(obj)


def _is_vector(obj: Any) -> bool:
    root, name = _root(obj), type(obj).__name__
    if root in ("pandas", "polars"):
        return name == "Series"
    if root == "pyarrow":
        return name.endswith("Array")
    return False


def to_list(obj: Any, name: str) -> List[Any]:
    """The values of a Series, array or sequence as a list."""
    if isinstance(obj, (str, bytes)) or isinstance(obj, Mapping):
        raise _invalid(name, f"must be a number or a sequence of numbers, not {type(obj).__name__}")
    for method in ("to_list", "tolist", "to_pylist"):
        if hasattr(obj, method):
            values = getattr(obj, method)()
            if isinstance(values, list):
                return values
    try:
        return list(obj)
    except TypeError:
        raise _invalid(name, f"must be a number or a sequence of numbers, not {type(obj).__name__}") from None


def series_like(template: Any, values: List[Any], name: str) -> Any:
    """``values`` as the vector kind of ``template``: a pandas Series on its index,
    a polars Series, a pyarrow Array, a numpy array, else a list."""
    root = _root(template)
    if root == "pandas" and hasattr(template, "index"):
        pd = _lib("pandas")
        return pd.Series(values, index=template.index, name=name)
    if root == "polars":
        pl = _lib("polars")
        return pl.Series(name, values)
    if root == "pyarrow":
        pa = _lib("pyarrow")
        return pa.array(values)
    if root == "numpy":
        np = _lib("numpy")
        return np.asarray(values)
    return values


def frame_like(k: str, data: Dict[str, List[Any]]) -> Any:
    """A frame of kind ``k`` (as returned by ``read_columns``) from a dict of columns."""
    return make_frame(data, k or "pandas")


def optional_mapping(obj: Optional[Mapping[str, str]], name: str) -> Dict[str, str]:
    """A ``{str: str}`` dict, checked."""
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise _invalid(name, f"must be a dict, not {type(obj).__name__}")
    out: Dict[str, str] = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise _invalid(f"{name}.{k}", "keys and values must be str")
        out[k] = v
    return out
