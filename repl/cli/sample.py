"""`textgen sample`: continue a prompt, streamed to stdout, at one or several temperatures.

Several ``--temp`` values are drawn together in one batched pass (`textgen_core.generate.sample_many`): the
first sample streams as it is generated and the others, finished at the same moment, follow it, each under a
label. Output is plain text (the prompt, then its continuation) or, with ``--jsonl``, one JSON object per
generated character.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from typing import TYPE_CHECKING, TextIO

from textgen_core.config import DEFAULT_LENGTH, PRIME_TAIL, PRIME_TAIL_TOLERANCE

from .. import values as v
from ..safe import visible
from .options import add_checkpoint, add_window, open_model, window

if TYPE_CHECKING:
    from textgen_core.generate import Token
    from textgen_core.inference import NumpyLSTM
    from textgen_core.sampling import SamplingSettings
    from textgen_core.vocab import Vocabulary

    from .options import Subcommand

DEFAULT_TEMP = 1.0
#: The promise about long seeds, with the tolerance bench/bench_prime.py measured (docs/errors.md).
TAIL_HELP = (
    f"Like --prompt, it is fed from its last {PRIME_TAIL:,} characters: the next-character probabilities differ "
    f"from feeding all of it by less than {PRIME_TAIL_TOLERANCE:g} on the bundled model (docs/errors.md)"
)
#: Seconds between flushes of the streamed sample: small enough to look live, large enough to cost nothing.
FLUSH_EVERY = 0.03


def register(sub: argparse._SubParsersAction, spec: Subcommand) -> None:
    p = spec.add_parser(sub)
    add_checkpoint(p)
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default="", metavar="TEXT", help="seed text (default: start of a line)")
    prompt.add_argument(
        "--prompt-file",
        metavar="FILE",
        help=f"read the seed text from a UTF-8 file of any length. {TAIL_HELP}; a progress bar shows on a terminal "
        "while a long seed is fed (Ctrl-C stops)",
    )
    p.add_argument(
        "--len",
        type=v.flag(v.parse_length),
        default=DEFAULT_LENGTH,
        metavar="N",
        help=f"characters to generate per sample (default {DEFAULT_LENGTH})",
    )
    temp = p.add_mutually_exclusive_group()
    temp.add_argument(
        "--temp",
        type=v.flag(v.parse_temperature),
        nargs="+",
        metavar="T",
        help=f"temperature(s), one labelled sample each, 0 = greedy (default {DEFAULT_TEMP:g}; at most "
        f"{v.MAX_COMPARE})",
    )
    temp.add_argument("--greedy", action="store_true", help="always take the most likely character (= --temp 0)")
    temp.add_argument(
        "--beam",
        type=v.flag(v.parse_beam_width),
        metavar="W",
        help="beam search of width W instead of sampling: deterministic, the likeliest text the beam finds",
    )
    p.add_argument("--top-k", type=v.flag(v.parse_top_k), metavar="K", help="draw only among the K likeliest")
    p.add_argument(
        "--top-p", type=v.flag(v.parse_top_p), metavar="P", help="draw only among the likeliest characters totalling P"
    )
    p.add_argument("--seed", type=v.flag(v.parse_seed), metavar="N", help="random seed: same seed, same output")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per generated character")
    add_window(p)
    p.set_defaults(func=main)


class _Output:
    """Formats samples for stdout: streams one sample live, collects the others, and neutralises terminal
    control characters when stdout is a terminal."""

    def __init__(self, stream: TextIO, settings: list[SamplingSettings], prompt: str, jsonl: bool):
        self.stream = stream
        self.settings = settings
        self.prompt = prompt
        self.jsonl = jsonl
        self.clean = visible if stream.isatty() else str
        self._last_flush = time.monotonic()

    def header(self, i: int) -> str:
        """The text before sample i's characters: a blank line and a label when there are several samples,
        then the prompt (plain text only)."""
        if self.jsonl:
            return ""
        if len(self.settings) == 1:
            return self.prompt
        label = f"── sample {i + 1}/{len(self.settings)} · {self.settings[i].describe()} ──\n"
        return ("\n" if i else "") + label + self.prompt

    def footer(self) -> str:
        return "" if self.jsonl else "\n"

    def token(self, i: int, token: Token) -> str:
        if not self.jsonl:
            return token.char
        return json.dumps(token.record(self.settings[i].temperature, sample=i), ensure_ascii=False) + "\n"

    def write(self, text: str, *, flush: bool = False) -> None:
        self.stream.write(self.clean(text))
        now = time.monotonic()
        if flush or now - self._last_flush >= FLUSH_EVERY:
            self.stream.flush()
            self._last_flush = now


def _beam(args: argparse.Namespace, model: NumpyLSTM, vocab: Vocabulary, prompt: str, lowercase: bool) -> int:
    """`--beam W`: the whole result at once (a beam's best text is known only at the end); each JSONL record
    names the width, and its temperature is null (nothing is drawn)."""
    from textgen_core.beam import beam_search

    result = beam_search(model, vocab, prompt, args.beam, args.len, lowercase=lowercase)
    clean = visible if sys.stdout.isatty() else str
    if args.jsonl:
        lines = [json.dumps(t.record(None, beam=args.beam), ensure_ascii=False) + "\n" for t in result.tokens]
        sys.stdout.write(clean("".join(lines)))
    else:
        sys.stdout.write(clean(prompt + "".join(t.char for t in result.tokens) + "\n"))
    sys.stdout.flush()
    return 0


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from textgen_core.corpus import read_text
    from textgen_core.generate import encode_seed, sample_many
    from textgen_core.inference import NumpyLSTM
    from textgen_core.sampling import SamplingSettings
    from textgen_core.vocab import describe_unknown

    from ..bars import CharsBar

    prompt = read_text(args.prompt_file) if args.prompt_file else args.prompt
    temps = [0.0] if args.greedy else v.check_temperatures(tuple(args.temp or [DEFAULT_TEMP]))
    settings = [SamplingSettings(t, args.top_k, args.top_p) for t in temps]
    ckpt = open_model(args)
    win = window(args, ckpt)
    model = NumpyLSTM.from_checkpoint(ckpt)
    lowercase = ckpt.meta.lowercase
    unknown = encode_seed(model, ckpt.vocab, prompt, lowercase).unknown
    if unknown:
        print(
            f"textgen: warning: skipping prompt characters the model does not know: {describe_unknown(unknown)}",
            file=sys.stderr,
        )
    if args.beam is not None:
        return _beam(args, model, ckpt.vocab, prompt, lowercase)
    out = _Output(sys.stdout, settings, prompt, args.jsonl)
    held: list[list[str]] = [[out.header(i)] for i in range(1, len(settings))]
    rng = np.random.default_rng(args.seed)
    with CharsBar(None, "priming the seed", note=" · Ctrl-C stops") as bar:
        steps = sample_many(model, ckpt.vocab, prompt, settings, args.len, rng, lowercase, progress=bar, window=win)
        try:
            first = next(steps)  # the seed is fed here: its bar, if any, is gone before any output
        except KeyboardInterrupt:
            bar.close()
            print("textgen: interrupted while priming the seed; nothing was generated", file=sys.stderr)
            return 130
    out.write(out.header(0))
    for n, tokens in enumerate(itertools.chain([first], steps)):
        out.write(out.token(0, tokens[0]), flush=n == 0)  # the first character shows at once, then in batches
        for i, token in enumerate(tokens[1:], start=1):
            held[i - 1].append(out.token(i, token))
    out.write(out.footer())
    for parts in held:
        out.write("".join(parts) + out.footer())
    out.write("", flush=True)
    return 0
