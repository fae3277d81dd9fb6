"""The compact on-disk form of one episode's decision rows (a "segment" of the run store).

A segment holds the columns that vary within an episode; the episode's own fields (agent,
scenario, task, family, seed, rollout) are stored once, in its `episodes` row, and `t` is
left out when it is 0..n-1. Each column is encoded by what it holds:

- one value for the whole episode (baselines' empty reasoning, "ok", zero tokens): stored once;
- integers and floats: a little-endian numpy array of the smallest integer type that holds
  them, or float64, with the positions of nulls;
- text: a dictionary of distinct values plus codes when values repeat, else the texts joined
  (UTF-8) with their lengths, or a list where some value is not text;
- `messages`: a pool of distinct messages and, per decision, indices into it. A message that
  grew from the one at the same place in the previous decision (the history in a single-turn
  prompt) is stored as a delta: kept prefix, kept suffix and the new middle. An episode's
  messages then take space linear in its horizon, not quadratic, and `decode` rebuilds the
  exact JSON text every decision was recorded with (tests compare it with what was sent).

The whole segment is zstd-compressed (level 1; segments written before were zlib, level 1, and
stay readable: the first bytes tell them apart). `encode(columns)` / `decode(blob)` are exact inverses
for the values the runner records (floats stay float64 bit for bit; NaN reads back as null,
as the JSON blocks of earlier runs stored it).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import zstandard

FORMAT = 2  # 1: the orjson column blocks of earlier runs (table decision_blocks); 2: segments
# zstd level 1 against zlib level 1 on a ucb1 episode (benchmarks/bench_runner.py): a third of the
# time (compression was the store's largest per-decision cost) and 20 instead of 27 bytes per decision
_ZSTD_LEVEL = 1
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_INT_TYPES = tuple((dtype, int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)) for dtype in ("<i1", "<i2", "<i4", "<i8"))
_HEADER = struct.Struct("<I")


_NONE = type(None)
_NUMBER_TYPES = {"INTEGER": {int}, "REAL": {int, float, _NONE}}  # a float in an INTEGER column stays text


def _array(values: Sequence[Any], sql: str) -> tuple[list[int], np.ndarray] | None:
    """The values as the smallest little-endian array that holds them and the null positions, or
    None when they are not all plain numbers of the column's type (they are then kept as text)."""
    kinds = set(map(type, values))
    if sql == "REAL":
        if not kinds <= _NUMBER_TYPES["REAL"]:
            return None
        array = np.asarray(values, dtype="<f8")  # None -> NaN; both read back as null
        nulls = np.flatnonzero(np.isnan(array)).tolist()
        if nulls:
            array = np.where(np.isnan(array), 0.0, array)
        return nulls, array
    nulls = []
    if _NONE in kinds:
        nulls = [i for i, v in enumerate(values) if v is None]
        values = [0 if v is None else v for v in values]
        kinds.discard(_NONE)
    if not kinds <= _NUMBER_TYPES["INTEGER"]:
        return None
    try:
        array = np.asarray(values, dtype=np.int64)
    except OverflowError:
        return None
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    dtype = next(d for d, smallest, largest in _INT_TYPES if smallest <= low and high <= largest)
    return nulls, array.astype(dtype)


def _common_prefix(a: str, b: str) -> int:
    # a binary search of slice comparisons: C-speed on the long history texts of LLM prompts
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _common_suffix(a: str, b: str, limit: int) -> int:
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        if a[len(a) - middle:] == b[len(b) - middle:]:
            low = middle
        else:
            high = middle - 1
    return low


def _encode_messages(values: Sequence[str | None]) -> list:
    """["messages", pool, refs]: pool entries ["m", message] or ["d", base, prefix, suffix, middle]."""
    pool: list[list] = []
    resolved: list[Any] = []  # the pool's messages, decoded (delta bases)
    index: dict[bytes, int] = {}
    refs: list[list[int] | None] = []
    previous: list[int] = []
    for text in values:
        if text is None:
            refs.append(None)
            continue
        messages = orjson.loads(text)
        if not isinstance(messages, list) or orjson.dumps(messages).decode() != text:
            return ["text", list(values)]  # not a list that re-serialises exactly: keep the text as it is
        row = []
        for position, message in enumerate(messages):
            key = orjson.dumps(message)
            found = index.get(key)
            if found is None:
                found = len(pool)
                base = previous[position] if position < len(previous) else None
                entry = ["m", message]
                if base is not None and isinstance(message, dict):
                    old = resolved[base]
                    content, old_content = message.get("content"), old.get("content") if isinstance(old, dict) else None
                    if (isinstance(content, str) and isinstance(old_content, str) and list(old) == list(message)
                            and all(old[k] == message[k] for k in message if k != "content")):
                        prefix = _common_prefix(old_content, content)
                        suffix = _common_suffix(old_content, content, min(len(old_content), len(content)) - prefix)
                        entry = ["d", base, prefix, suffix, content[prefix:len(content) - suffix]]
                pool.append(entry)
                resolved.append(message)
                index[key] = found
            row.append(found)
        refs.append(row)
        previous = row
    return ["messages", pool, refs]


def _decode_messages(pool: list, refs: list) -> list[str | None]:
    resolved: list[Any] = []
    for entry in pool:
        if entry[0] == "m":
            resolved.append(entry[1])
        else:
            _, base, prefix, suffix, middle = entry
            old = resolved[base]
            content = old["content"]
            resolved.append({**old, "content": content[:prefix] + middle + content[len(content) - suffix:]})
    texts: dict[tuple[int, ...], str] = {}
    out: list[str | None] = []
    for row in refs:
        if row is None:
            out.append(None)
            continue
        key = tuple(row)
        if key not in texts:
            texts[key] = orjson.dumps([resolved[i] for i in row]).decode()
        out.append(texts[key])
    return out


def _joined(values: Sequence[Any]) -> tuple[bytes, bytes] | None:
    """Distinct texts (the JSON of algorithms' info) as their UTF-8 concatenation and their lengths
    in characters (<u4); None when some value is not a str. Kept out of the JSON header, which would
    escape every quote of the JSON texts (measured: 4x the time of joining them)."""
    if set(map(type, values)) != {str}:
        return None
    try:
        data = "".join(values).encode()
    except UnicodeEncodeError:  # a lone surrogate: left to the list (whose JSON header refuses it, as before)
        return None
    return data, np.fromiter(map(len, values), dtype="<u4", count=len(values)).tobytes()


def _split(text: str, lengths: np.ndarray) -> list[str]:
    ends = np.cumsum(lengths, dtype=np.int64).tolist()
    return [text[start:end] for start, end in zip([0, *ends], ends)]


def encode(columns: Mapping[str, Sequence[Any]], types: Mapping[str, str],
           constants: Mapping[str, Any] | None = None, n: int | None = None) -> bytes:
    """One episode's decision columns (name -> values, SQL types in `types`) as a compressed segment;
    `constants` (name -> the value of all `n` decisions) are stored as they are, unscanned."""
    if n is None:
        n = len(next(iter(columns.values()))) if columns else 0
    specs: dict[str, list] = {name: ["const", value] for name, value in (constants or {}).items()}
    buffers: list[bytes] = []
    offset = 0
    for name, values in columns.items():
        sql = types[name]
        if name == "t" and tuple(values) == tuple(range(n)):
            specs[name] = ["range"]
            continue
        first = values[0] if n else None
        # C-speed checks: equal values of one type (0 and 0.0 or 1 and True stay apart; a value equal
        # to a str or to None is one, so those skip the type pass); the last value rules most columns out
        if n and values[-1] == first and values.count(first) == n and (first is None or type(first) is str or len(set(map(type, values))) == 1) \
                and not (isinstance(first, float) and math.isnan(first)):
            specs[name] = ["const", first]
            continue
        if name == "messages":
            specs[name] = _encode_messages(values)
            continue
        numbers = _array(values, sql) if sql in _NUMBER_TYPES else None
        if numbers is not None:
            nulls, array = numbers
            data = array.tobytes()
            specs[name] = ["array", array.dtype.str, offset, len(data), nulls]
            buffers.append(data)
            offset += len(data)
            continue
        distinct = list(dict.fromkeys(values))
        if len(distinct) * 2 <= n:
            specs[name] = ["dict", distinct, list(map({v: i for i, v in enumerate(distinct)}.__getitem__, values))]
            continue
        joined = _joined(values)
        if joined is None:
            specs[name] = ["text", list(values)]
            continue
        data, lengths = joined
        specs[name] = ["joined", offset, len(data), offset + len(data), len(lengths)]
        buffers += (data, lengths)
        offset += len(data) + len(lengths)
    header = orjson.dumps({"n": n, "columns": specs})
    # the frame records its size, so decompression needs no size bound
    return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(_HEADER.pack(len(header)) + header + b"".join(buffers))


def _decompress(blob: bytes) -> bytes:
    if blob[:4] == _ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().decompress(blob)
    return zlib.decompress(blob)  # a segment written before zstd


def decode(blob: bytes) -> tuple[int, dict[str, Any]]:
    """(n, name -> values) of a segment: numpy arrays for numeric columns without nulls, else lists.

    Constant columns come back as ("const", value) pairs, so readers can broadcast them cheaply
    (`column_values` expands one)."""
    raw = _decompress(blob)
    (size,) = _HEADER.unpack_from(raw)
    header = orjson.loads(raw[_HEADER.size:_HEADER.size + size])
    body = memoryview(raw)[_HEADER.size + size:]
    n = header["n"]
    out: dict[str, Any] = {}
    for name, spec in header["columns"].items():
        kind = spec[0]
        if kind == "range":
            out[name] = np.arange(n, dtype=np.int64)
        elif kind == "const":
            out[name] = ("const", spec[1])
        elif kind == "array":
            _, dtype, start, length, nulls = spec
            array = np.frombuffer(body[start:start + length], dtype=dtype)
            array = array.astype(np.float64 if dtype.endswith("f8") else np.int64)
            if nulls:
                values = array.tolist()
                for i in nulls:
                    values[i] = None
                out[name] = values
            else:
                out[name] = array
        elif kind == "dict":
            distinct = spec[1]
            out[name] = [distinct[i] for i in spec[2]]
        elif kind == "messages":
            out[name] = _decode_messages(spec[1], spec[2])
        elif kind == "joined":
            _, start, length, lengths_start, lengths_length = spec
            lengths = np.frombuffer(body[lengths_start:lengths_start + lengths_length], dtype="<u4")
            out[name] = _split(bytes(body[start:start + length]).decode(), lengths)
        else:
            out[name] = spec[1]
    return n, out


def column_values(value: Any, n: int) -> Any:
    """A decoded column as a list or array of `n` values (a constant is repeated)."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "const":
        return [value[1]] * n
    return value
