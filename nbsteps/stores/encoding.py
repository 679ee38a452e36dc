"""How values become signed files and back: Arrow IPC (the Feather v2 file
format, uncompressed) for DataFrames and Series of plain numeric columns --
their buffers are written as they are, without a copy or an encoding pass --,
Parquet for the other DataFrames and Series whose round trip is exact, and
cloudpickle (protocol 5) for everything else.

pandas, pyarrow and cloudpickle are imported lazily: importing nbsteps stays fast.
"""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

from nbsteps.interrupts import deferred_interrupts
from nbsteps.stores import pickling, signing
from nbsteps.stores.fs import create_file, unlink_quiet
from nbsteps.stores.signing import StreamingMac


def byte_view(data: Any) -> memoryview:
    """A flat byte view of what pickle or pyarrow hands to ``write``."""
    if isinstance(data, pickle.PickleBuffer):
        return data.raw()  # also works for Fortran-ordered arrays
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class SignedWriter:
    """The file object that pickle and pyarrow write a value file to.

    It writes unbuffered to a new file (``O_EXCL``) and computes the MAC
    (``signing.preferred()``) of exactly the bytes written. An ``OSError`` from the file system is kept in
    ``error`` so that a failing disk is told apart from a failing encoder.
    """

    closed = False

    def __init__(self, dir_fd: int, name: str, key: bytes) -> None:
        self.dir_fd, self.name = dir_fd, name
        self._fd = -1
        self._mac = StreamingMac(key, signing.preferred())
        self.size = 0
        self.error: "OSError | None" = None
        try:
            with deferred_interrupts():  # never an open descriptor that nobody holds
                self._fd = create_file(dir_fd, name)
        except BaseException:  # an interrupt that came meanwhile is raised as the block ends
            self._close()
            raise

    def write(self, data: Any) -> int:
        view = byte_view(data)
        n = view.nbytes
        self._mac.update(view)
        try:
            while view.nbytes:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.error = exc
            raise
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # pyarrow may call this; the file is closed by finish/abort

    def finish(self, sync: bool = True) -> dict:
        """Make the file durable (*sync*: fsync now; else the store's committer
        does, :mod:`nbsteps.stores.committer`) and close it; its MAC as a
        metadata entry field (``signing.mac_field``). On any failure
        (an interrupt included) the file is closed and removed, the hashing
        thread stopped."""
        try:
            if sync:
                os.fsync(self._fd)
            digest = signing.mac_field(self._mac.algorithm, self._mac.hexdigest())
        except BaseException as exc:
            if isinstance(exc, OSError):
                self.error = exc
            self.abort()
            raise
        self._close()
        return digest

    def _close(self) -> None:
        with deferred_interrupts():  # closed once, and known to be closed
            fd, self._fd = self._fd, -1
            if fd >= 0:
                os.close(fd)

    def abort(self) -> None:
        """Stop hashing, close and remove the file: safe at any moment, twice too."""
        try:
            self._mac.abort()
        finally:
            try:
                self._close()
            finally:
                unlink_quiet(self.name, self.dir_fd)


class NullSink:
    """Where values are pickled only to learn whether they can be."""

    def write(self, data: Any) -> int:
        return byte_view(data).nbytes


def pandas_kind(value: Any) -> "str | None":
    """'frame' / 'series' for plain pandas objects (never imports pandas, and
    never looks into a pandas that another thread is still importing)."""
    pd = pickling.imported("pandas")
    if pd is None:
        return None
    if type(value) is pd.DataFrame:  # subclasses (GeoDataFrame...) are pickled
        return "frame"
    if type(value) is pd.Series:
        return "series"
    return None


_SERIES_COLUMN = "values"


def frame_encoding(value: Any, kind: str) -> "tuple[str, Any, dict] | None":
    """How to write the DataFrame or Series *value*: ``("arrow", table, extra)``
    or ``("parquet", frame, extra)`` with the extra metadata needed to restore
    it exactly; None when neither gives it back unchanged (then it is pickled).

    A round trip must be exact: no object columns (their Parquet type depends
    on the values: lists come back as arrays, mixed types fail, strings become
    ``str``), and a small sample must come back equal (column names, index,
    dtypes, attrs). A DatetimeIndex ``freq`` is not kept by either format: it
    is saved in the metadata.
    """
    import numpy as np
    import pandas as pd

    extra: dict = {}
    if kind == "series":
        if value.name is not None and not isinstance(value.name, (str, int, bool)):
            return None
        if isinstance(value.name, int) and not isinstance(value.name, bool) and abs(value.name) >= 2**53:
            return None
        extra["series_name"] = value.name
        frame = value.to_frame(name=_SERIES_COLUMN)
    else:
        frame = value
    if any(dtype == np.dtype(object) for dtype in frame.dtypes):
        return None
    index = frame.index
    levels = index.levels if isinstance(index, pd.MultiIndex) else [index]
    if any(level.dtype == np.dtype(object) for level in levels):
        return None
    freq = getattr(index, "freq", None)
    if freq is not None and isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        extra["index_freq"] = freq.freqstr
    try:
        table = arrow_table(frame)
    except Exception:
        table = None
    encoding = "arrow" if table is not None else "parquet"
    shape = _frame_shape(frame, kind, encoding)
    if shape is not None and _SAMPLED.get(shape):
        return encoding, (table if table is not None else frame), extra
    try:
        sample = frame.iloc[:64]
        if table is not None:
            back = arrow_read(arrow_bytes(arrow_table(sample)))
        else:
            back = parquet_read(parquet_bytes(sample))
        pd.testing.assert_frame_equal(
            sample,
            back,
            check_exact=True,
            check_index_type=True,
            check_column_type=True,
            check_freq=False,
            check_flags=True,
        )
        if back.attrs != sample.attrs:
            return None
    except Exception:
        return None
    if shape is not None:
        if len(_SAMPLED) >= 512:
            _SAMPLED.clear()
        _SAMPLED[shape] = True
    return encoding, (table if table is not None else frame), extra


#: the shapes (:func:`_frame_shape`) of frames whose sample came back equal
_SAMPLED: "dict[tuple, bool]" = {}


def _frame_shape(frame: Any, kind: str, encoding: str) -> "tuple | None":
    """What decides whether a frame written as *encoding* comes back equal: its
    labels and their types, the columns' and the index's (and its levels')
    classes, dtypes (their ``repr``: a categorical's categories, a timestamp's
    unit and zone, a string's storage and missing value) and names, the flags;
    not its values and so not its length, but whether it is empty.

    Arrow (every column a NumPy number or bool array, the index a RangeIndex or
    a flat numeric NumPy index, see :func:`arrow_table`) writes the values' bytes
    as they are. Parquet's round trip of a column whose dtype is not ``object``
    (those are pickled) is decided by the dtype: timestamps keep nanoseconds,
    strings are UTF-8 in pandas as in Parquet; a value pyarrow refuses raises
    while writing, and the frame is then pickled (:func:`nbsteps.stores.writing`).
    The sample (64 rows) never looked further than the first rows either.

    A frame with ``attrs`` has no shape (its sample is always checked). None also
    when a label cannot be a key (the sample is then checked)."""
    if frame.attrs:
        return None
    columns, index = frame.columns, frame.index
    levels = getattr(index, "levels", None)
    try:
        shape = (
            encoding,
            kind,
            type(columns),
            repr(columns.dtype),
            tuple(columns.names),
            tuple(columns),
            tuple(map(type, columns)),
            tuple(map(repr, frame.dtypes)),
            type(index),
            repr(index.dtype),
            tuple(index.names),
            None if levels is None else tuple((type(lv), repr(lv.dtype)) for lv in levels),
            frame.shape[0] == 0,
            frame.flags.allows_duplicate_labels,
        )
        hash(shape)
    except Exception:
        return None
    return shape


def arrow_table(frame: Any) -> Any:
    """*frame* as an Arrow table whose columns are its own NumPy buffers (no
    copy), when every column, and the index unless it is a RangeIndex, is a
    plain numeric NumPy array; else None."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    index = frame.index
    if not isinstance(index, pd.RangeIndex) and (
        isinstance(index, pd.MultiIndex)
        or not isinstance(index.dtype, np.dtype)
        or index.dtype.kind not in "iuf"
    ):
        return None
    if frame.columns.has_duplicates or any(
        not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" for dtype in frame.dtypes
    ):
        return None
    schema = pa.Schema.from_pandas(frame, preserve_index=None)
    # from_pandas=False: NaN stays a NaN (no null bitmap to compute), so the buffers are used as they are
    arrays = [pa.array(frame.iloc[:, i].to_numpy(), from_pandas=False) for i in range(frame.shape[1])]
    if len(schema) == len(arrays) + 1:
        arrays.append(pa.array(index.to_numpy(), from_pandas=False))
    if len(schema) != len(arrays):
        return None
    return pa.Table.from_arrays(arrays, schema=schema)


def write_arrow(table: Any, sink: Any) -> None:
    import pyarrow as pa

    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def arrow_bytes(table: Any) -> bytes:
    import io

    buf = io.BytesIO()
    write_arrow(table, buf)
    return buf.getvalue()


def arrow_read(data: Any) -> Any:
    """The frame in the Arrow IPC file *data*. When *data* is a bytearray (the
    verified bytes read from the store, private to this process) its numeric
    columns are writable NumPy views of those bytes: nothing is copied."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    table = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(data))).read_all()
    if not isinstance(data, bytearray):
        # consolidated (copied) blocks: zero-copy ones would be read-only (see parquet_read)
        return table.to_pandas()
    frame = table.to_pandas(split_blocks=True)  # zero-copy, but read-only views
    start = np.frombuffer(data, np.uint8).ctypes.data
    columns = {}
    for i in range(frame.shape[1]):
        arr = frame.iloc[:, i].to_numpy()
        offset = arr.ctypes.data - start if isinstance(arr, np.ndarray) else -1
        if 0 <= offset and offset + arr.nbytes <= len(data) and arr.flags.c_contiguous:
            arr = np.frombuffer(data, arr.dtype, arr.size, offset)  # the same bytes, writable
        columns[i] = arr
    out = pd.DataFrame(columns, index=frame.index, copy=False)
    out.columns = frame.columns
    out.attrs = frame.attrs  # kept by to_pandas (pyarrow's pandas metadata), not by a new frame
    return out


def write_parquet(frame: Any, sink: Any, compression: "str | None") -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # preserve_index=None keeps a RangeIndex as metadata instead of a column
    table = pa.Table.from_pandas(frame, preserve_index=None)
    # Dictionary encoding pays for strings and categoricals; for numbers it
    # halves write speed for nothing. Statistics only serve query pushdown.
    dict_columns = [
        f.name
        for f in table.schema
        if pa.types.is_string(f.type)
        or pa.types.is_large_string(f.type)
        or pa.types.is_binary(f.type)
        or pa.types.is_large_binary(f.type)
        or pa.types.is_dictionary(f.type)
    ]
    pq.write_table(
        table, sink, compression=compression or "none", use_dictionary=dict_columns, write_statistics=False
    )


def parquet_bytes(frame: Any) -> bytes:
    import io

    buf = io.BytesIO()
    write_parquet(frame, buf, None)
    return buf.getvalue()


def parquet_read(data: Any) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(pa.py_buffer(data)))
    # Not split_blocks=True: its zero-copy columns are read-only numpy arrays,
    # and pandas then fails on in-place assignment (``df.iloc[0, 0] = 1``).
    # self_destruct frees each Arrow column once converted (lower peak memory).
    return table.to_pandas(self_destruct=True)


def decode(entry: dict, data: bytearray, resolve: Any = None, memo: "dict | None" = None) -> Any:
    """A value from its verified bytes; *resolve* and *memo*: see :func:`pickling.load`."""
    encoding = entry["encoding"]
    if encoding == "pickle":
        return pickling.load(data, resolve, memo)
    if encoding in ("parquet", "arrow"):
        frame = parquet_read(data) if encoding == "parquet" else arrow_read(data)
        freq = entry.get("index_freq")
        if freq:
            cls = type(frame.index)
            try:
                frame.index = cls(frame.index, freq=freq)
            except (TypeError, ValueError):
                pass  # freq is a convenience; the data is intact without it
        if entry.get("kind") == "series":
            series = frame[_SERIES_COLUMN]
            series.name = entry.get("series_name")
            return series
        return frame
    raise ValueError(f"unknown encoding {encoding!r}")


def pickle_to(
    sink: Any,
    value: Any,
    faithful: bool = True,
    refs: "dict | None" = None,
    later: "dict | None" = None,
    exhaustive: bool = False,
) -> "pickling.Dumped":
    """cloudpickle, protocol 5, leaving live objects as they were (``pickling``);
    the objects of *refs* written as references, those of *later* found (``pickling.dump``)."""
    return pickling.dump(value, sink, faithful, refs, later, exhaustive)


def pickle_bytes(value: Any) -> bytes:
    import io

    buf = io.BytesIO()
    try:
        pickling.dump(value, buf)
    except pickling.DroppedUnpicklable:
        buf = io.BytesIO()
        pickling.dump(value, buf, faithful=False)
    return buf.getvalue()


def json_roundtrips(value: Any) -> bool:
    """Whether JSON gives *value* back unchanged (tuples, NaN, non-str keys do not)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False)) == value
    except (TypeError, ValueError):
        return False
