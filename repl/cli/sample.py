"""`textgen sample`: continue a prompt, streamed to stdout, at one or several temperatures.

Several ``--temp`` values are drawn together in one batched pass (`textgen_core.generate.sample_many`): the
first sample streams as it is generated and the others, finished at the same moment, follow it, each under a
label. Output is plain text (the prompt, then its continuation) or, with ``--jsonl``, one JSON object per
generated character.

With ``--copies`` (or ``--corpus``) the copy meter measures each sample against the model's training text: every
JSONL record gets ``copy``, how many characters up to and including it occur word for word in the training text,
and a summary per sample goes to stderr. Its machinery (`textgen_core.copies`, the suffix-array index) is imported
only then, so a plain sample does not load it.
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
from ..safe import flat, visible
from .options import add_checkpoint, add_corpus, add_window, open_model, window

if TYPE_CHECKING:
    from textgen_core.checkpoint import Checkpoint
    from textgen_core.copies import CopyTracker
    from textgen_core.copyindex import CopyIndex
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
    p.add_argument(
        "--copies",
        action="store_true",
        help="measure what each sample copies from the training text: a `copy` field per --jsonl record, and a "
        "summary per sample on stderr (docs/copies.md)",
    )
    add_corpus(p)
    add_window(p)
    p.set_defaults(func=main)


class _Output:
    """Formats samples for stdout: streams one sample live, collects the others, and neutralises terminal
    control characters when stdout is a terminal."""

    def __init__(
        self,
        stream: TextIO,
        settings: list[SamplingSettings],
        prompt: str,
        jsonl: bool,
        meter: CopyMeter | None = None,
    ):
        self.stream = stream
        self.settings = settings
        self.prompt = prompt
        self.jsonl = jsonl
        self.meter = meter
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
        copy = {} if self.meter is None else {"copy": self.meter.feed(i, token.char)}
        if not self.jsonl:
            return token.char
        return json.dumps(token.record(self.settings[i].temperature, sample=i, **copy), ensure_ascii=False) + "\n"

    def write(self, text: str, *, flush: bool = False) -> None:
        self.stream.write(self.clean(text))
        now = time.monotonic()
        if flush or now - self._last_flush >= FLUSH_EVERY:
            self.stream.flush()
            self._last_flush = now


class CopyMeter:
    """`--copies`: one tracker per sample, fed as the characters are written, and a summary of each at the end."""

    def __init__(self, index: CopyIndex, samples: int, min_length: int):
        from textgen_core.copies import CopyTracker

        self.index = index
        self.min_length = min_length
        self.trackers: list[CopyTracker] = [CopyTracker(index) for _ in range(samples)]
        self.texts: list[list[str]] = [[] for _ in range(samples)]
        self.lengths: list[list[int]] = [[] for _ in range(samples)]

    @classmethod
    def open(cls, args: argparse.Namespace, ckpt: Checkpoint, samples: int) -> CopyMeter:
        """The training text (`--corpus`, else the model's record), its index (built once, a line on stderr)."""
        from textgen_core.copies import training_text
        from textgen_core.copyindex import index_for

        found = training_text(ckpt.meta.corpus, ckpt.meta.lowercase, args.corpus, anyway=args.corpus_anyway)

        def building() -> None:
            print(f"textgen: indexing {found.names} for the copy meter (once for this text)…", file=sys.stderr)

        opened = index_for(found.paths, found.hashes, found.lowercase, building=building)
        for line in (f"the old index was unreadable ({opened.damage}): rebuilt" if opened.damage else "", found.note):
            if line:
                print(f"textgen: copy meter: {found.names}: {line}", file=sys.stderr)
        return cls(opened.index, samples, args.min_copy)

    def feed(self, i: int, char: str) -> int:
        n = self.trackers[i].feed(char)
        self.texts[i].append(char)
        self.lengths[i].append(n)
        return n

    def report(self, labels: list[str]) -> None:
        """One line per sample on stderr (`copies.summary`)."""
        from textgen_core.copies import report, summary

        for label, chars, lengths in zip(labels, self.texts, self.lengths, strict=True):
            text = "".join(chars)
            found = report(self.index, text, self.min_length, lengths)
            print(flat(f"textgen: copies ({label}): {summary(self.index, text, found)}"), file=sys.stderr)


def _beam(
    args: argparse.Namespace,
    model: NumpyLSTM,
    vocab: Vocabulary,
    prompt: str,
    lowercase: bool,
    meter: CopyMeter | None = None,
) -> int:
    """`--beam W`: the whole result at once (a beam's best text is known only at the end); each JSONL record
    names the width, and its temperature is null (nothing is drawn)."""
    from textgen_core.beam import beam_search

    result = beam_search(model, vocab, prompt, args.beam, args.len, lowercase=lowercase)
    clean = visible if sys.stdout.isatty() else str
    copies = [{"copy": meter.feed(0, t.char)} if meter else {} for t in result.tokens]
    if args.jsonl:
        lines = [
            json.dumps(t.record(None, beam=args.beam, **c), ensure_ascii=False) + "\n"
            for t, c in zip(result.tokens, copies, strict=True)
        ]
        sys.stdout.write(clean("".join(lines)))
    else:
        sys.stdout.write(clean(prompt + "".join(t.char for t in result.tokens) + "\n"))
    sys.stdout.flush()
    if meter is not None:
        meter.report([f"beam {args.beam}"])
    return 0


def main(args: argparse.Namespace) -> int:
    from textgen_core.generate import encode_seed, sample_many
    from textgen_core.inference import NumpyLSTM
    from textgen_core.rng import Rng
    from textgen_core.sampling import SamplingSettings
    from textgen_core.vocab import describe_unknown

    from ..bars import CharsBar

    if args.prompt_file:
        from textgen_core.corpus import read_text

        prompt = read_text(args.prompt_file)
    else:
        prompt = args.prompt
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
    meter = CopyMeter.open(args, ckpt, len(settings)) if args.copies or args.corpus else None
    if args.beam is not None:
        return _beam(args, model, ckpt.vocab, prompt, lowercase, meter)
    out = _Output(sys.stdout, settings, prompt, args.jsonl, meter)
    held: list[list[str]] = [[out.header(i)] for i in range(1, len(settings))]
    rng = Rng(args.seed)
    if sys.stderr.isatty():  # the priming bar says Ctrl-C stops it
        from ..keys import ctrl_c_interrupts

        ctrl_c_interrupts()
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
        if tokens[0] is not None:  # None: a word or word-piece stream that already has its characters
            out.write(out.token(0, tokens[0]), flush=n == 0)  # the first token shows at once, then in batches
        for i, token in enumerate(tokens[1:], start=1):
            if token is not None:
                held[i - 1].append(out.token(i, token))
    out.write(out.footer())
    for parts in held:
        out.write("".join(parts) + out.footer())
    out.write("", flush=True)
    if meter is not None:
        meter.report([f"sample {i + 1} · {s.describe()}" for i, s in enumerate(settings)])
    return 0
