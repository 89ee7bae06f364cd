"""Bad checkpoints: every way a ``.safetensors`` file can be damaged, forged or hostile ends in one line and exit
status 2, in the library, in every command that takes ``-c`` and in the REPL's ``/load`` (which keeps the model
it had). Nothing in a checkpoint is ever run, no header makes us allocate what it claims, and a vocabulary that
could drive the terminal is refused at load.

Every case goes through `checkpoint.load` and, in-process, through each command's `main`; a subprocess runs all
of them through `textgen info` and a representative few through every command, so the suite stays fast.
"""

from __future__ import annotations

import io
import pickle
import resource
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    ROOT,
    assert_one_line_error,
    frame_checkpoint,
    make_text,
    run_cli,
    split_checkpoint,
    with_metadata,
    write_random_checkpoint,
)

from repl import cli
from textgen_core import checkpoint
from textgen_core.errors import TextgenError

#: Where a payload would leave its mark if anything unpickled it (next to the checkpoint, per test).
MARKER = "PWNED"
GIB = 1 << 30


class Payload:
    """Unpickling this creates a file: what a hostile pickle checkpoint (nanoGPT's, char-rnn's) could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).touch, ())


# ---- forging files ------------------------------------------------------------------------------------------------


def _meta(edit: Callable[[dict], object]) -> Callable[[Path], bytes]:
    """The good checkpoint with its textgen metadata replaced by `edit(metadata)` (a dict, or raw text)."""
    return lambda good: with_metadata(good, edit)


def _tensors(edit: Callable[[dict[str, np.ndarray]], None]) -> Callable[[Path], bytes]:
    """The good checkpoint with its weights changed in place by `edit`, metadata kept."""
    from safetensors import safe_open
    from safetensors.numpy import load, save

    def make(good: Path) -> bytes:
        with safe_open(str(good), framework="numpy") as f:
            metadata = f.metadata()
        tensors = load(good.read_bytes())
        edit(tensors)
        return save(tensors, metadata=metadata)

    return make


def _header(edit: Callable[[dict], None]) -> Callable[[Path], bytes]:
    """The good checkpoint with its safetensors header changed in place by `edit`."""

    def make(good: Path) -> bytes:
        header, body = split_checkpoint(good)
        edit(header)
        return frame_checkpoint(header, body)

    return make


def _vocab_char(ch: str) -> Callable[[Path], bytes]:
    """The good checkpoint with its second vocabulary character replaced by `ch` (same size, same shapes)."""
    return _meta(lambda m: {**m, "vocab": [m["vocab"][0], ch, *m["vocab"][2:]]})


def _config(**changes: object) -> Callable[[Path], bytes]:
    return _meta(lambda m: {**m, "config": {**m["config"], **changes}})


def _zip(good: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model/weights.bin", good.read_bytes())
    return buf.getvalue()


def _pickle_payload(good: Path) -> bytes:
    return pickle.dumps({"model": Payload(good.with_name(MARKER)), "step": 100})


def _torch_payload(good: Path) -> bytes:
    """A real `torch.save` file (a zip holding data.pkl) whose pickle creates the marker when loaded."""
    import torch

    buf = io.BytesIO()
    torch.save({"model": Payload(good.with_name(MARKER)), "step": 100}, buf)
    return buf.getvalue()


def _gigabyte_header(path: Path) -> None:
    """A sparse 3 GiB file whose header claims all of it: reading the header as told would allocate 3 GiB."""
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 3 * GIB) + b'{"__metadata__": {')
        f.truncate(3 * GIB + 8)


def _nan(t: dict[str, np.ndarray]) -> None:
    t["head.bias"][3] = np.nan


def _inf(t: dict[str, np.ndarray]) -> None:
    t["embedding.weight"][0, 0] = np.inf


@dataclass(frozen=True)
class Case:
    """A bad checkpoint: `make` gives its bytes from a good checkpoint (or, given the target path, writes a file
    itself); `needle` is part of the one-line message the user must get."""

    id: str
    make: Callable[[Path], bytes] | None
    needle: str
    write: Callable[[Path], None] | None = None


CASES = [
    Case("empty-file", lambda g: b"", "not a textgen checkpoint: it is an empty file"),
    Case("truncated-in-header", lambda g: g.read_bytes()[:200], "file has 200: it is truncated"),
    Case("truncated-in-weights", lambda g: g.read_bytes()[:-100], "runs past the end of the file"),
    Case("random-bytes", lambda g: np.random.default_rng(1).bytes(4096), "it is binary data of another kind"),
    Case(
        "text-file", lambda g: b"root:x:0:0:root:/root:/bin/bash\n" * 40, "not a textgen checkpoint: it is a text file"
    ),
    Case("zip-renamed", _zip, "it is a zip archive (a PyTorch .pt/.bin checkpoint?)"),
    Case("pickle-renamed", lambda g: pickle.dumps({"weights": [0.5] * 100}), "a Python pickle (never loaded"),
    Case("pickle-payload", _pickle_payload, "a Python pickle (never loaded"),
    Case("torch-pickle-payload", _torch_payload, "a zip archive"),
    Case("header-longer-than-file", lambda g: struct.pack("<Q", 10**6) + b"{}", "header claims 1000000 bytes"),
    Case("header-of-gigabytes", None, "implausibly large", write=_gigabyte_header),
    Case("header-not-json", lambda g: frame_checkpoint(b"not json at all!"), "header is not valid JSON"),
    Case("header-nested-deeply", lambda g: frame_checkpoint(b"[" * 100_000), "header is JSON nested too deeply"),
    Case("header-not-an-object", lambda g: frame_checkpoint(b"[1, 2]"), "header is not an object"),
    Case(
        "tensor-offsets-past-end",
        _header(lambda h: h["head.bias"].update(data_offsets=[0, 10**9])),
        "tensor 'head.bias' is malformed",
    ),
    Case(  # numpy's int64 product of these dimensions wraps around to 0 and would match empty offsets
        "tensor-shape-overflows",
        _header(lambda h: h["head.bias"].update(shape=[2**32, 2**32], data_offsets=[0, 0])),
        "tensor 'head.bias' is malformed",
    ),
    Case("metadata-missing", _header(lambda h: h.pop("__metadata__")), "has no textgen metadata"),
    Case("metadata-not-textgens", _meta(lambda m: {"format": "other"}), "metadata is not textgen's"),
    Case("metadata-not-json", _meta(lambda m: "{'step': 1"), "metadata is not valid JSON"),
    Case("metadata-nested-deeply", _meta(lambda m: "[" * 100_000 + "]" * 100_000), "nested too deeply"),
    Case("metadata-newer-version", _meta(lambda m: {**m, "version": 99}), "format version 99"),
    Case("config-missing", _meta(lambda m: {k: v for k, v in m.items() if k != "config"}), "config is not an"),
    Case("config-wrong-type", _config(hidden_size="32"), "hidden_size must be a positive integer"),
    Case("config-billion-layers", _config(num_layers=10**9), "1000000000 layers but the file holds only"),
    Case("step-wrong-type", _meta(lambda m: {**m, "step": "100"}), "wrong type"),
    Case("val-bpc-nan", _meta(lambda m: {**m, "val_bpc": float("nan")}), "val_bpc is not a finite number"),
    Case("vocab-not-a-list", _meta(lambda m: {**m, "vocab": "".join(m["vocab"])}), "not a list of single"),
    Case("vocab-repeated", _vocab_char("a"), "repeated characters"),
    Case("vocab-size-vs-config", _meta(lambda m: {**m, "vocab": m["vocab"][:-1]}), "but config says"),
    Case(
        "vocab-size-vs-weights",
        _meta(lambda m: {**m, "vocab": [*m["vocab"], "~"], "config": {**m["config"], "vocab_size": 42}}),
        "weight embedding.weight has shape (41, 16) but the config and vocabulary need (42, 16)",
    ),
    Case("weights-missing", _tensors(lambda t: t.pop("head.bias")), "lacks weights head.bias"),
    Case("weights-nan", _tensors(_nan), "weight head.bias contains NaN or Inf"),
    Case("weights-inf", _tensors(_inf), "weight embedding.weight contains NaN or Inf"),
    Case("vocab-esc", _vocab_char("\x1b"), "terminal control characters ('\\x1b')"),
    Case("vocab-bel", _vocab_char("\x07"), "terminal control characters ('\\x07')"),
    Case("vocab-backspace", _vocab_char("\b"), "terminal control characters ('\\x08')"),
    Case("vocab-carriage-return", _vocab_char("\r"), "terminal control characters ('\\r')"),
    Case("vocab-del", _vocab_char("\x7f"), "terminal control characters ('\\x7f')"),
    Case("vocab-c1-csi", _vocab_char("\x9b"), "terminal control characters ('\\x9b')"),
    Case("vocab-lone-surrogate", _vocab_char("\ud800"), "lone surrogates"),
]
IDS = [c.id for c in CASES]
#: One of each kind of damage, for the subprocess runs of every command.
REPRESENTATIVE = ["truncated-in-weights", "torch-pickle-payload", "weights-nan", "vocab-esc"]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("good") / "good.safetensors")


@pytest.fixture(scope="module")
def bad(good: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`bad(case_id)`: the path of that bad checkpoint, in a folder of its own (where its marker would go)."""
    by_id = {c.id: c for c in CASES}
    made: dict[str, Path] = {}

    def get(case_id: str) -> Path:
        if case_id not in made:
            case = by_id[case_id]
            path = tmp_path_factory.mktemp(case_id) / f"{case_id}.safetensors"
            if case.write is not None:
                case.write(path)
            else:
                assert case.make is not None
                path.write_bytes(case.make(good))
            made[case_id] = path
        return made[case_id]

    return get


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "text.txt"
    path.write_text(make_text(500), encoding="utf-8")
    return path


def _case(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


# ---- the library --------------------------------------------------------------------------------------------------


def test_the_good_checkpoint_and_its_forgeries_differ_only_where_meant(good: Path) -> None:
    """The forging helpers are exact: untouched, they rebuild a file that loads (so each case fails for its
    reason alone)."""
    assert checkpoint.load(good).meta.step == 100
    rebuilt = good.with_name("rebuilt.safetensors")
    rebuilt.write_bytes(_meta(lambda m: m)(good))
    assert checkpoint.load(rebuilt).vocab == checkpoint.load(good).vocab


def test_the_payloads_are_live(good: Path, tmp_path: Path) -> None:
    """Unpickled, the payload does create its file: the tests below would notice if loading ever unpickled."""
    target = tmp_path / "sub" / "good.safetensors"
    target.parent.mkdir()
    pickle.loads(_pickle_payload(target))
    assert (target.parent / MARKER).exists()


@pytest.mark.parametrize("case_id", IDS)
def test_load_refuses_with_one_line_and_no_large_allocation(bad: Callable[[str], Path], case_id: str) -> None:
    path = bad(case_id)
    tracemalloc.start()
    try:
        with pytest.raises(TextgenError) as e:
            checkpoint.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert _case(case_id).needle in message
    # What to do: a damaged checkpoint is fetched or made again; a file that is no checkpoint is not one to give.
    assert message.endswith((checkpoint.FIX, "upgrade textgen to read it", checkpoint.NOT_A_CHECKPOINT)), message
    assert peak < 16 << 20, f"loading allocated {peak / 2**20:.0f} MiB"  # whatever sizes the file claims
    assert not (path.parent / MARKER).exists()


# ---- every command that takes -c ------------------------------------------------------------------------------------


def _command_args(command: str, path: Path, text_file: Path) -> list[str]:
    extra = {"sample": ["--len", "5"], "eval": [str(text_file)]}.get(command, [])
    return [command, "-c", str(path), *extra]


COMMANDS = ("info", "sample", "eval", "repl")


@pytest.mark.parametrize("case_id", IDS)
def test_every_command_prints_one_line_and_exits_2(
    bad: Callable[[str], Path], text_file: Path, case_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process `main` (what the console script runs), so all cases × commands stay fast."""
    path = bad(case_id)
    for command in COMMANDS:
        status = cli.main(_command_args(command, path, text_file))
        out, err = capsys.readouterr()
        proc = subprocess.CompletedProcess([command], status, out, err)
        assert_one_line_error(proc, _case(case_id).needle)
        assert out == "", command
    assert not (path.parent / MARKER).exists()


@pytest.mark.parametrize("case_id", IDS)
def test_info_subprocess_refuses_every_case(bad: Callable[[str], Path], case_id: str) -> None:
    path = bad(case_id)
    proc = run_cli("info", "-c", str(path))
    assert_one_line_error(proc, "textgen: error: ")
    assert proc.stdout == ""
    assert not (path.parent / MARKER).exists()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case_id", REPRESENTATIVE)
def test_each_command_subprocess_refuses(bad: Callable[[str], Path], text_file: Path, case_id: str, command: str):
    path = bad(case_id)
    proc = run_cli(*_command_args(command, path, text_file), input="the will\n")
    assert_one_line_error(proc, str(path))
    assert proc.stdout == ""
    assert not (path.parent / MARKER).exists()


def test_a_gigabyte_header_is_refused_within_a_small_address_space(bad: Callable[[str], Path], good: Path) -> None:
    """`textgen info` under a 512 MiB address-space limit: reading the 3 GiB header would fail with MemoryError
    (a traceback); refusing it first gives the one line. The good checkpoint shows the limit itself is fine."""
    limit = 512 << 20

    def run(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "repl.cli", "info", "-c", str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
        )

    assert run(good).returncode == 0
    assert_one_line_error(run(bad("header-of-gigabytes")), "header of 3221225472 bytes is implausibly large")


# ---- the REPL's /load ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", IDS)
def test_repl_load_keeps_the_old_model_and_it_still_generates(
    bad: Callable[[str], Path], repl_session, case_id: str
) -> None:
    s, out = repl_session(length=12)
    old = s.loaded
    path = bad(case_id)
    s.submit(f"/load {path}")
    message = out.getvalue()
    assert message.startswith("/load: ") and message.count("\n") == 1, message
    assert s.loaded is old
    s.submit("the will")
    assert len(s.transcript[-1].tokens) == 12
    assert not (path.parent / MARKER).exists()


def test_read_meta_reads_the_header_and_no_weight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`read_meta` (every --resume and `info`) costs the header, not the weights: it answers for a file whose
    weights are garbage, and without ever opening the file through safetensors, which is how weights are read."""
    path = write_random_checkpoint(tmp_path / "big.safetensors")
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    data[8 + n :] = b"\xff" * (len(data) - 8 - n)  # every weight NaN; the header still describes them exactly
    path.write_bytes(bytes(data))
    with pytest.raises(TextgenError, match="NaN"):
        checkpoint.load(path)  # the weights are unusable ...

    import safetensors

    def no_weights(*args: object, **kwargs: object) -> None:
        raise AssertionError("read_meta opened the weights")

    monkeypatch.setattr(safetensors, "safe_open", no_weights)
    meta = checkpoint.read_meta(path)  # ... and the metadata is all there, read from the header alone
    assert meta.config.hidden_size == 32 and meta.step == 100 and len(meta.vocab) == meta.config.vocab_size
    with pytest.raises(TextgenError, match="opened the weights"):
        checkpoint.load(path)  # the patch is where weights are read: load goes through it


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None], ids=["nan", "inf", "-inf", "finite-extremes"])
def test_a_float16_checkpoint_is_checked_value_by_value(tmp_path: Path, bad: float | None) -> None:
    """A compact (float16) checkpoint stays float16 when loaded and is checked by its bits: one NaN or infinity
    anywhere is refused; the largest finite values, a subnormal and negative zero are not."""
    good = write_random_checkpoint(tmp_path / "f32.safetensors")
    w = np.zeros(0, np.float16)

    def compact(t: dict[str, np.ndarray]) -> None:
        nonlocal w
        for k in t:
            t[k] = t[k].astype(np.float16)
        w = t["lstm.weight_hh_l0"]
        w[3, 5], w[-1, -1], w[0, 0], w[1, 1] = 65504, -65504, np.float16(6e-8), -0.0
        if bad is not None:
            w[7, 2] = bad

    path = tmp_path / "f16.safetensors"
    path.write_bytes(_tensors(compact)(good))
    if bad is not None:
        with pytest.raises(TextgenError, match=r"weight lstm\.weight_hh_l0 contains NaN or Inf"):
            checkpoint.load(path)
        return
    loaded = checkpoint.load(path)
    assert loaded.tensors["lstm.weight_hh_l0"].dtype == np.float16
    assert np.array_equal(loaded.tensors["lstm.weight_hh_l0"], w)
