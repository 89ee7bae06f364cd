"""Generation speed: the numpy streaming path against its memory-bandwidth bound, the book's window recompute
and torch per step; Enter-to-first-character latency; start-up time and memory of a torch-free process.

    .venv/bin/python bench/bench_generate.py            # ~2 minutes on a 2-core machine; run it on an idle one

Random weights (vocabulary 86) are enough: speed does not depend on what the weights are. Every number is the
median of several repeats. The numpy part runs before torch is imported, so torch's threads cannot disturb it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repl.values import positive_int  # noqa: E402
from textgen_core.checkpoint import CheckpointMeta, save  # noqa: E402
from textgen_core.config import ModelConfig  # noqa: E402
from textgen_core.generate import Generator  # noqa: E402
from textgen_core.inference import NumpyLSTM  # noqa: E402
from textgen_core.sampling import SamplingSettings  # noqa: E402
from textgen_core.vocab import Vocabulary  # noqa: E402

VOCAB = Vocabulary(["\n", *(chr(c) for c in range(32, 32 + 85))])  # 86 characters, like Nietzsche's
SIZES = {"2×512": (2, 512), "1×128": (1, 128)}
WINDOW = 60  # the book's maxlen
SEED_TEXT = ("the will to power is the will to life and the life of the spirit is a long question of truth " * 2)[:100]

#: What the numbers are checked against (docs/record/benchmarks.md, Generation).
TARGET_NUMPY_2X512 = 2500
TARGET_BOUND_RATIO = 1.5
TARGET_VS_WINDOW = 20
TARGET_VS_TORCH = 1.3
TARGET_FIRST_CHAR_S = 0.050
TARGET_STARTUP_S = 0.3
TARGET_RSS_MB = 100


def random_tensors(config: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights drawn like PyTorch's default LSTM init, U(±1/√H)."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(config.hidden_size)
    return {k: rng.uniform(-bound, bound, shape).astype(np.float32) for k, shape in config.tensor_shapes().items()}


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: buffers allocated, caches and BLAS threads awake
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def read_bandwidth(nbytes: int, repeats: int) -> float:
    """Bytes/s reading a buffer of `nbytes` (the weights' size): the best of one thread and two threads
    (BLAS uses both cores), each a SIMD max-reduction, which is bound by reads rather than arithmetic."""
    buf = np.random.default_rng(0).standard_normal(nbytes // 4).astype(np.float32)
    inner = 50

    def one() -> None:
        for _ in range(inner):
            buf.max()

    halves = np.array_split(buf, 2)
    pool = ThreadPoolExecutor(2)

    def two() -> None:
        def work(part: np.ndarray) -> None:
            for _ in range(inner):
                part.max()

        list(pool.map(work, halves))

    best = min(median_time(one, repeats), median_time(two, repeats))
    pool.shutdown()
    return nbytes * inner / best


def numpy_stream_rate(gen: Generator, n: int, repeats: int) -> float:
    def run() -> None:
        gen.reset()
        for _ in gen.stream(n):
            pass

    return n / median_time(run, repeats)


def numpy_step_rate(net: NumpyLSTM, n: int, repeats: int) -> float:
    ids = np.array([1])

    def run() -> None:
        state = net.initial_state(1)
        for _ in range(n):
            net.step(ids, state)

    return n / median_time(run, repeats)


def numpy_window_rate(net: NumpyLSTM, n: int, repeats: int) -> float:
    """The book's loop: for every new character, run the model over the last 60 characters from scratch."""
    rng = np.random.default_rng(0)
    window = list(rng.integers(0, net.vocab_size, WINDOW))

    def run() -> None:
        for _ in range(n):
            logits, _ = net.forward(np.array(window[-WINDOW:]), net.initial_state(1))
            window.append(int(np.argmax(logits[-1])))

    return n / median_time(run, repeats)


def first_char_latency(gen: Generator, repeats: int) -> float:
    def run() -> None:
        gen.prime(SEED_TEXT)
        next(gen.stream(1))

    return median_time(run, repeats)


def torch_rates(config: ModelConfig, tensors: dict, n: int, repeats: int) -> dict[str, float]:
    """chars/s of a torch nn.LSTM call per character (state carried, sampling in torch), with and without
    oneDNN, and of the book's window recompute in torch."""
    import torch

    from textgen_core.training.model import CharLSTM

    model = CharLSTM.from_numpy(config, tensors).eval()

    def per_step() -> None:
        state = model.initial_state(1)
        ids = torch.zeros((1, 1), dtype=torch.long)
        for _ in range(n):
            logits, state = model(ids, state)
            ids = torch.multinomial(torch.softmax(logits[0, -1], dim=-1), 1)[None]

    def window_run() -> None:
        window = torch.randint(0, config.vocab_size, (1, WINDOW))
        for _ in range(max(n // 10, 20)):
            logits, _ = model(window[:, -WINDOW:])
            window = torch.cat([window, logits[:, -1].argmax(-1, keepdim=True)], dim=1)

    rates = {}
    with torch.inference_mode():
        rates["torch per step (oneDNN on)"] = n / median_time(per_step, repeats)
        with torch.backends.mkldnn.flags(enabled=False):
            rates["torch per step (oneDNN off)"] = n / median_time(per_step, repeats)
        rates["torch window recompute"] = max(n // 10, 20) / median_time(window_run, repeats)
    return rates


STARTUP_SCRIPT = """
import sys, time
t0 = time.perf_counter()
from textgen_core import checkpoint
from textgen_core.generate import Generator
gen = Generator.from_checkpoint(checkpoint.load(sys.argv[1]), seed=0)
gen.prime("the will to power")
text = "".join(t.char for t in gen.stream(200))
assert len(text) == 200
assert "torch" not in sys.modules, "the generation path imported torch"
print(time.perf_counter() - t0)
"""


def startup(path: Path, repeats: int) -> tuple[float, float, float]:
    """(wall seconds of the whole process, seconds inside it from first import to 200 characters, peak RSS MB)
    for a fresh Python that imports the generation path, loads the 2×512 checkpoint and samples 200 chars."""
    walls, inside = [], []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", STARTUP_SCRIPT, str(path)], capture_output=True, text=True, env=env, check=True
        )
        walls.append(time.perf_counter() - t0)
        inside.append(float(out.stdout))
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux; max over children
    return statistics.median(walls), statistics.median(inside), rss_mb


def vocab_sweep(sizes: list[int], n: int, reps: int) -> None:
    """Streaming tokens/s of a 2×512 LSTM as the vocabulary grows: the head's product (H × V per token) and the
    softmax over V are the only parts that grow, so this is the output layer's cost. The tokens' texts do not
    matter to the speed, so each vocabulary is V distinct characters."""
    print(f"2×512 LSTM, numpy streaming (sampling included), {n} tokens, median of {reps}")
    print("| vocabulary | weights (M) | of them the output layer | tokens/s | vs 86 |")
    print("| --- | --- | --- | --- | --- |")
    base = None
    for v in sizes:
        vocab = Vocabulary([chr(0x100 + i) for i in range(v)])
        config = ModelConfig(vocab_size=v, num_layers=2, hidden_size=512)
        net = NumpyLSTM(config, random_tensors(config))
        rate = numpy_stream_rate(Generator(net, vocab, settings=SamplingSettings(1.0), seed=0), n, reps)
        base = base or rate
        head = v * (512 + 1) / config.num_params()
        print(f"| {v:,} | {config.num_params() / 1e6:.2f} | {head:.0%} | {rate:,.0f} | {rate / base:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=positive_int, default=2000, help="characters per streaming run (default 2000)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="repeats per measurement (median reported)")
    parser.add_argument(
        "--vocab-sweep",
        metavar="V1,V2,…",
        help="only: streaming speed of a 2×512 model at these vocabulary sizes (the output layer's cost, "
        "docs/record/tokens-compared.md), e.g. 86,1000,2000,4000,16384",
    )
    args = parser.parse_args()
    n, reps = args.chars, args.repeats
    if args.vocab_sweep:
        vocab_sweep([int(v) for v in args.vocab_sweep.split(",")], n, reps)
        return
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'auto')}; {n} chars, median of {reps}; "
        f"load average {os.getloadavg()[0]:.2f} (numbers are only meaningful on an idle machine)\n"
    )

    with tempfile.TemporaryDirectory() as tmp:  # start-up first: RUSAGE_CHILDREN must see only that child
        config = ModelConfig(vocab_size=len(VOCAB), num_layers=2, hidden_size=512)
        path = Path(tmp) / "bench.safetensors"
        save(path, random_tensors(config), CheckpointMeta(config=config, vocab=VOCAB))
        wall, inside, rss = startup(path, reps)

    results = {}
    for label, (layers, hidden) in SIZES.items():
        config = ModelConfig(vocab_size=len(VOCAB), num_layers=layers, hidden_size=hidden)
        tensors = random_tensors(config)
        net = NumpyLSTM(config, tensors)
        gen = Generator(net, VOCAB, settings=SamplingSettings(1.0), seed=0)
        r = {
            "stream": numpy_stream_rate(gen, n, reps),
            "step": numpy_step_rate(net, n, reps),
            "bound": read_bandwidth(net.weight_bytes, reps) / net.weight_bytes,
            "window": numpy_window_rate(net, max(n // 20, 20), 3),
            "first": first_char_latency(gen, reps),
            "mb": net.weight_bytes / 1e6,
        }
        results[label] = (config, tensors, r)
        print(f"[{label}] {config.describe()}, {r['mb']:.1f} MB of weights read per character")
        print(f"  numpy streaming (sampling included)   {r['stream']:8,.0f} chars/s")
        print(f"  numpy LSTM step only                  {r['step']:8,.0f} chars/s")
        print(
            f"  read-bandwidth bound                  {r['bound']:8,.0f} chars/s  "
            f"({r['bound'] * r['mb'] / 1e3:.0f} GB/s); streaming is {r['bound'] / r['stream']:.2f}× below it"
        )
        print(f"  numpy window recompute (60)           {r['window']:8,.1f} chars/s")
        print(f"  Enter → first char, 100-char seed     {r['first'] * 1e3:8.1f} ms\n")

    for label, (config, tensors, r) in results.items():
        r.update(torch_rates(config, tensors, n if label == "1×128" else n // 4, 3))
        best_torch = max(r["torch per step (oneDNN on)"], r["torch per step (oneDNN off)"])
        best_window = max(r["window"], r["torch window recompute"])
        print(f"[{label}] torch")
        for key in ("torch per step (oneDNN on)", "torch per step (oneDNN off)", "torch window recompute"):
            print(f"  {key:<37} {r[key]:8,.1f} chars/s")
        print(f"  numpy streaming vs best torch per step {r['stream'] / best_torch:7.1f}×")
        print(f"  numpy streaming vs best window recompute {r['stream'] / best_window:5.0f}×\n")
        r["vs_torch"], r["vs_window"] = r["stream"] / best_torch, r["stream"] / best_window

    big = results["2×512"][2]
    print(
        f"start-up (2×512, fresh process, import + load + 200 chars): wall {wall:.3f} s, "
        f"{inside:.3f} s after interpreter start; peak RSS {rss:.0f} MB; torch not imported\n"
    )
    ratio = big["bound"] / big["stream"]
    targets = [
        (f"streaming ≥ {TARGET_NUMPY_2X512:,} chars/s", f"{big['stream']:,.0f}", big["stream"] >= TARGET_NUMPY_2X512),
        (f"within {TARGET_BOUND_RATIO}× of the bandwidth bound", f"{ratio:.2f}×", ratio <= TARGET_BOUND_RATIO),
        (f"≥ {TARGET_VS_WINDOW}× window recompute", f"{big['vs_window']:.0f}×", big["vs_window"] >= TARGET_VS_WINDOW),
        (f"≥ {TARGET_VS_TORCH}× best torch per step", f"{big['vs_torch']:.1f}×", big["vs_torch"] >= TARGET_VS_TORCH),
        ("first char ≤ 50 ms", f"{big['first'] * 1e3:.1f} ms", big["first"] <= TARGET_FIRST_CHAR_S),
        (f"start-up ≤ {TARGET_STARTUP_S} s", f"{wall:.3f} s", wall <= TARGET_STARTUP_S),
        (f"peak RSS ≤ {TARGET_RSS_MB} MB", f"{rss:.0f} MB", rss <= TARGET_RSS_MB),
    ]
    print(f"targets (2×512; load average now {os.getloadavg()[0]:.2f}):")
    for what, got, ok in targets:
        print(f"  {what:<38} {got:>10}  {'ok' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
