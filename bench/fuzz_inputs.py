"""What `bench/fuzz.py` throws at textgen: mutated checkpoints and Keras files, REPL lines, corpora and seeds.

Every generator takes a `random.Random` seeded by the case's kind and number, so a case is the same whatever order
the cases run in and however many run beside it. Nothing here starts a process; `fuzz.py` runs the command line.

Free text (seeds, arguments) never holds ``/`` or ``~``: a path a fuzzed line can name is either one of
`special_paths` (all inside the work folder, plus the session's own standard output and input) or a plain name,
which is relative to the work folder the REPL runs in. So even a line that prompt_toolkit's keys rearrange into a
``/save`` cannot name a file outside the work folder.
"""

from __future__ import annotations

import copy
import io
import json
import random
import struct
import zipfile
from pathlib import Path

# ---- atoms -----------------------------------------------------------------------------------------------------

#: JSON values a field may be replaced with: the edges of every type.
ATOMS: list[object] = [
    0, 1, -1, 2, 7, 2**31, 2**63, -(2**63), 10**30, 10**400, 1.5, -0.0, 1e308, 1e-320,
    "", "x", "LSTM", "GRU", "lstm", "gru+lstm", "float16", "F16", "hard_sigmoid", "relu", "nan", "\u001b[2J", "é中😀",
    None, True, False, [], {}, [1, 2], [[[]]], {"a": 1}, ["a", "a"], [-1, 3],
]  # fmt: skip
#: Numbers as a user may type them, for slash-command arguments.
NUMBERS = [
    "0", "1", "-1", "2", "3", "0.5", "1.2", "10", "64", "250", "1000", "100000", "100001", "-0", "1e-300", "1e309",
    "nan", "NaN", "inf", "-inf", "Infinity", "0x1F", "1_000", "٣", "１２", "2" * 400, "9" * 30, "-" + "9" * 20, "1.",
    ".5", "5e", "+3", "3 4", "0.0000001", "65536", "2147483648", "18446744073709551616",
]  # fmt: skip
WORDS = [
    "on", "off", "quote", "bracket", "depth", "line", "word", "sentence", "find", "min", "anyway", "norepeat",
    "bundled", "run", "prob", "sampled", "entropy", "cell", "beam", "beam3", "0:1", "1:5", "99:99", "a:b", "q",
]  # fmt: skip
#: Characters of free text: no path separator and no home-folder tilde (see the module's doc).
LETTERS = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()[]{}<>-_=+*&^%$#@|`"
UNICODE = "éèßøåñçü中文日本語한국어Ωπλ😀🎉👍🏽\u0301\u200d\u200f\u202e\ufeff\u00a0\u2028\ufffd"
#: What a terminal may send besides text: controls, escape sequences, keys, mouse reports, an unended paste.
HOSTILE = [
    "\x1b[2J", "\x1b[H", "\x1b]0;title\x07", "\x1b]52;c;aGVsbG8=\x07", "\x1bP1$r\x1b\\", "\x1b[6n", "\x1b[?1049h",
    "\x1b[200~", "\x1b[201~", "\x1b[A", "\x1b[B", "\x1b[C", "\x1b[D", "\x1bOP", "\x1b[15~", "\x1b[M !!", "\x1b[<0;1;1M",
    "\x07", "\x08", "\x7f", "\x0b", "\x0c", "\x00", "\x01", "\x05", "\x0e", "\x10", "\x12", "\x15", "\x17", "\x19",
    "\x1a", "\x1c", "\x1d", "\x1e", "\x1f", "\x1b", "\t", "\x9b2J", "\x9d0;x\x9c", "\u0085", "\x03", "\x04",
]  # fmt: skip


def text(rng: random.Random, n: int, *, unicode: bool = True) -> str:
    pool = LETTERS + (UNICODE if unicode else "")
    return "".join(rng.choice(pool) for _ in range(n))


def length(rng: random.Random) -> int:
    """Mostly short, now and then long: a log-uniform length up to 20,000."""
    return int(10 ** rng.uniform(0, 4.3))


# ---- JSON trees ------------------------------------------------------------------------------------------------


def _nodes(obj: object, out: list) -> list:
    """(container, key) of every value in a JSON tree."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.append((obj, k))
        _nodes(v, out)
    return out


def mutate_json(obj: object, rng: random.Random, edits: int = 1) -> object:
    """`obj` with `edits` random changes: a value replaced by an edge atom or another value of the tree, a key
    removed or renamed, a number nudged, a string cut or grown."""
    obj = copy.deepcopy(obj)
    for _ in range(edits):
        nodes = _nodes(obj, [])
        if not nodes:
            return rng.choice(ATOMS)
        parent, key = rng.choice(nodes)
        value = parent[key]
        op = rng.randrange(6)
        if op == 0:
            parent[key] = copy.deepcopy(rng.choice(ATOMS))
        elif op == 1 and isinstance(parent, dict):
            del parent[key]
        elif op == 1:
            parent.pop(key)
        elif op == 2 and isinstance(parent, dict):
            parent[text(rng, 5, unicode=False)] = parent.pop(key)
        elif op == 3 and type(value) in (int, float):
            parent[key] = rng.choice([value + 1, value - 1, -value, value * 1000, value * 2**40, 0])
        elif op == 4 and isinstance(value, str):
            parent[key] = rng.choice([value[: len(value) // 2], value * 3, value.upper(), value + text(rng, 3)])
        else:
            other, other_key = rng.choice(nodes)
            parent[key] = copy.deepcopy(other[other_key])
    return obj


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Bytes flipped, cut, repeated or appended: damage that knows nothing of the format."""
    b = bytearray(data)
    op = rng.randrange(5)
    if op == 0 and b:
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        del b[rng.randrange(len(b) + 1) :]
    elif op == 2 and b:
        i = rng.randrange(len(b))
        b[i:i] = b[i : i + rng.randint(1, 4096)]
    elif op == 3:
        b += rng.randbytes(rng.randint(1, 4096))
    elif b:
        i = rng.randrange(len(b))
        b[i : i + 8] = rng.randbytes(8)
    return bytes(b)


# ---- checkpoints -----------------------------------------------------------------------------------------------

CHECKPOINT_KINDS = ("header-json", "header-length", "dtype", "shape", "offsets", "metadata", "weights", "truncate",
                    "bytes")  # fmt: skip


def _split(raw: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _frame(header: dict | bytes, body: bytes) -> bytes:
    head = header if isinstance(header, bytes) else json.dumps(header).encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(head)) + head + body


def mutate_checkpoint(raw: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A checkpoint damaged in one named way: its header's JSON, its length, a tensor's dtype, shape or offsets,
    the textgen metadata, the weights' bytes (NaN, Inf, huge), a cut, or blind byte damage."""
    kind = rng.choice(CHECKPOINT_KINDS)
    header, body = _split(raw)
    tensors = [k for k in header if k != "__metadata__"]
    name = rng.choice(tensors)
    if kind == "header-json":
        head = bytearray(json.dumps(header).encode())
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(head))
            head[i] = rng.choice(b'{}[]",:0123456789-eE.tfn \\x')
        return kind, _frame(bytes(head), body)
    if kind == "header-length":
        n = len(json.dumps(header))
        fake = rng.choice([0, 1, 7, n - 1, n + 1, len(raw), 2**63, 2**64 - 1, (1 << 20) + 1, rng.getrandbits(64)])
        return kind, struct.pack("<Q", fake) + _frame(header, body)[8:]
    if kind == "dtype":
        header[name]["dtype"] = rng.choice(["F16", "F64", "BF16", "I32", "I64", "U8", "BOOL", "F8_E4M3", "XX", 5, None])
        if rng.random() < 0.5 and header[name]["dtype"] in ("F16", "F64"):  # consistent sizes: a valid other dtype
            return kind, _retyped(header, body, name)
    elif kind == "shape":
        shape = header[name]["shape"]
        header[name]["shape"] = rng.choice([shape[::-1], [], [0], [-1, 3], [2**40], [*shape, 1], ["3"], [[2]],
                                            [2**32, 2**32], shape + shape, [1] * 64])  # fmt: skip
    elif kind == "offsets":
        a, b = header[name]["data_offsets"]
        header[name]["data_offsets"] = rng.choice([[b, a], [a, b + 4], [-1, b], [0, 0], [a + 0.5, b], [a], "x",
                                                   [a, len(body) + 8], [0, b - a]])  # fmt: skip
    elif kind == "metadata":
        meta = json.loads(header["__metadata__"]["textgen"])
        new = mutate_json(meta, rng, rng.randint(1, 3))
        header["__metadata__"]["textgen"] = (
            json.dumps(new) if rng.random() < 0.9 else mutate_bytes(json.dumps(new).encode(), rng).decode("latin-1")
        )
    elif kind == "weights":
        start, end = header[name]["data_offsets"]
        b = bytearray(body)
        values = [float("nan"), float("inf"), -float("inf"), 3.4e38, 1e-45, 0.0, 1e30]
        for _ in range(rng.randint(1, 8)):
            if end - start >= 4:
                i = start + 4 * rng.randrange((end - start) // 4)
                b[i : i + 4] = struct.pack("<f", rng.choice(values))
        body = bytes(b)
    elif kind == "truncate":
        return kind, raw[: rng.randrange(len(raw))]
    else:
        return kind, mutate_bytes(raw, rng)
    return kind, _frame(header, body)


def _retyped(header: dict, body: bytes, name: str) -> bytes:
    """The checkpoint with tensor `name` stored as the dtype its header now says (offsets of all redone)."""
    import numpy as np

    wide = {"F16": np.float16, "F64": np.float64}
    parts, offset = [], 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        start, end = info["data_offsets"]
        data = body[start:end]
        if key == name:
            data = np.frombuffer(data, dtype=np.float32).astype(wide[info["dtype"]]).tobytes()
        info["data_offsets"] = [offset, offset + len(data)]
        parts.append(data)
        offset += len(data)
    return _frame(header, b"".join(parts))


# ---- Keras files -----------------------------------------------------------------------------------------------


def mutate_keras(path: Path, out: Path, rng: random.Random) -> str:
    """Write a damaged copy of the Keras file `path` (made by Keras) at `out`; returns what was done to it."""
    raw = path.read_bytes()
    choice = rng.random()
    if choice < 0.25:
        out.write_bytes(mutate_bytes(raw, rng))
        return "bytes"
    if path.suffix == ".keras":
        return _mutate_zip(raw, out, rng)
    out.write_bytes(raw)
    return _mutate_h5(out, rng)


def _mutate_zip(raw: bytes, out: Path, rng: random.Random) -> str:
    """A `.keras` zip with one member changed: config.json or metadata.json as JSON, the weights' HDF5 by h5py or
    blindly, a member dropped or added."""
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    target = rng.choice(sorted(members))
    op = rng.randrange(4)
    if op == 0 and target.endswith(".json"):
        members[target] = json.dumps(mutate_json(json.loads(members[target]), rng, rng.randint(1, 4))).encode()
        what = f"zip:{target}:json"
    elif op == 1 and target.endswith(".h5"):
        inner = out.with_suffix(".inner.h5")
        inner.write_bytes(members[target])
        what = "zip:" + _mutate_h5(inner, rng)
        members[target] = inner.read_bytes()
        inner.unlink()
    elif op == 2:
        del members[target]
        what = f"zip:{target}:dropped"
    else:
        members[target] = mutate_bytes(members[target], rng)
        what = f"zip:{target}:bytes"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    out.write_bytes(buf.getvalue())
    return what


def _mutate_h5(path: Path, rng: random.Random) -> str:
    """An HDF5 file changed through h5py: an attribute's JSON or value, a dataset's shape, dtype or values, a
    dataset or group removed."""
    import h5py
    import numpy as np

    with h5py.File(path, "r+") as f:
        datasets: list[str] = []
        f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
        attrs = [(name, key) for name in ["/", *datasets] for key in f[name].attrs]
        op = rng.randrange(5)
        if op == 0 and attrs:
            name, key = rng.choice(attrs)
            value = f[name].attrs[key]
            try:
                decoded = json.loads(value)
                f[name].attrs[key] = json.dumps(mutate_json(decoded, rng, rng.randint(1, 4)))
                return f"h5:attr:{key}:json"
            except (TypeError, ValueError):
                f[name].attrs[key] = rng.choice(["", "3.0", "x" * 100, 7, np.array([1, 2])])
                return f"h5:attr:{key}"
        if not datasets:
            return "h5:none"
        name = rng.choice(datasets)
        data = f[name][()]
        del f[name]
        if op == 1:
            return "h5:dataset-removed"
        if op == 2:
            shape = rng.choice([(0,), (3,), (data.size + 1,), (*np.shape(data), 1), np.shape(data)[::-1] or (2,)])
            f[name] = np.resize(np.asarray(data, dtype=np.float32), shape)
            return "h5:dataset-shape"
        if op == 3:
            f[name] = np.asarray(data).astype(rng.choice([np.float16, np.float64, np.int32, np.uint8, np.bool_]))
            return "h5:dataset-dtype"
        values = np.array(data, dtype=np.float32, copy=True)
        if values.size:
            values.flat[rng.randrange(values.size)] = rng.choice([np.nan, np.inf, -np.inf, 3.4e38])
        f[name] = values
        return "h5:dataset-values"


# ---- corpora and seeds -----------------------------------------------------------------------------------------


def corpus_bytes(rng: random.Random) -> tuple[str, bytes]:
    """A file to train on or seed with: random bytes, text of every kind of trouble, or text just big enough."""
    kind = rng.choice(["random", "text", "controls", "nul", "bom-crlf", "bad-utf8", "one-line", "many-chars",
                       "latin1", "utf16", "tiny", "empty"])  # fmt: skip
    n = length(rng) * 4
    if kind == "random":
        return kind, rng.randbytes(n)
    if kind == "text":
        return kind, text(rng, n).encode()
    if kind == "controls":
        return kind, (text(rng, n, unicode=False) + rng.choice(HOSTILE) + text(rng, 50)).encode()
    if kind == "nul":
        return kind, text(rng, n).encode() + b"\x00" + text(rng, 10).encode()
    if kind == "bom-crlf":
        return kind, b"\xef\xbb\xbf" + text(rng, n).replace(" ", "\r\n").replace(".", "\r").encode()
    if kind == "bad-utf8":
        data = bytearray(text(rng, n).encode())
        data[rng.randrange(len(data) + 1) : 0] = rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80"])
        return kind, bytes(data)
    if kind == "one-line":
        return kind, (text(rng, 1, unicode=False) * (n * 20)).encode()
    if kind == "many-chars":
        return kind, "".join(chr(0x4E00 + rng.randrange(20000)) for _ in range(n + 1100)).encode()
    if kind == "latin1":
        return kind, bytes(rng.randrange(32, 256) for _ in range(n))
    if kind == "utf16":
        return kind, text(rng, n).encode("utf-16")
    if kind == "tiny":
        return kind, text(rng, rng.randint(1, 600), unicode=False).encode()
    return kind, b""


# ---- REPL lines ------------------------------------------------------------------------------------------------


def repl_line(rng: random.Random, commands: list[tuple[str, bool]], paths: list[str]) -> tuple[str, bytes]:
    """One line as typed at the prompt (without its Enter): a command with random arguments, a seed, a hostile mix
    of text and terminal sequences, or a command aimed at a special path. `commands` holds each name and alias
    with whether it takes a path."""
    kind = rng.choices(["command", "seed", "hostile", "path"], weights=[40, 25, 20, 15])[0]
    if kind == "path":
        name = rng.choice([n for n, takes_path in commands if takes_path] + ["cells"])
        arg = rng.choice(paths)
        if name == "cells":
            arg = f"{rng.choice(WORDS[2:8])} {arg}"
        elif name == "copies" and rng.random() < 0.3:
            arg = f"anyway {arg}"
        return kind, f"/{name} {arg}".encode("utf-8", "surrogateescape")
    if kind == "seed":
        return kind, text(rng, rng.choice([0, 1, 5, min(length(rng), 4000)])).encode()
    if kind == "hostile":
        parts = [rng.choice(HOSTILE) if rng.random() < 0.5 else text(rng, rng.randint(0, 20)) for _ in range(8)]
        line = "".join(parts).encode()
        if rng.random() < 0.2:
            line += rng.choice([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80abc"])  # not UTF-8
        return kind, line
    name, takes_path = rng.choice(commands)
    if takes_path:
        return kind, f"/{name} {rng.choice(paths)}".encode("utf-8", "surrogateescape")
    if rng.random() < 0.1:
        name = name.upper()
    pieces = rng.choice(
        [[], [rng.choice(NUMBERS)], [rng.choice(WORDS)], [rng.choice(WORDS), rng.choice(NUMBERS)],
         [rng.choice(NUMBERS) for _ in range(rng.randint(2, 9))], [text(rng, min(length(rng), 4000))],
         [rng.choice(WORDS), rng.choice(HOSTILE), rng.choice(NUMBERS)]]
    )  # fmt: skip
    return kind, ("/" + " ".join([name, *pieces])).encode()
