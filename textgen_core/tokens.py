"""Token kinds other than characters: words, and word pieces learned by SentencePiece.

Both implement `vocab.Vocabulary`'s interface, so training, the checkpoint, inference, scoring and the REPL use
them as they use characters. Two rules make them comparable with a character model:

- **Nothing is hidden behind an unknown token.** Every distinct character of the training text is a token of
  its own, so any text of known characters is encoded exactly: a word outside the vocabulary is spelled in
  characters. Characters the training text never had are reported and skipped, as a character model skips
  them. So the tokens of an encoded text concatenate to the text (less its unknown characters), and its bits
  per character compare across token kinds.
- **One segmentation per text.** A text could be spelled several ways (a known word also as its characters);
  `encode` gives the one training used, and a model's score of a text is the probability of that segmentation.

Words (`kind = "word"`): the text is cut into words, a word being a run of letters with the one space before it
(``" the"``, so the spaces between words cost nothing extra), and everything else one character at a time. The
vocabulary is every character of the training text plus its most frequent words seen at least twice, up to the
vocabulary size (`DEFAULT_SIZES`); a word seen once is spelled. An unseen word costs one prediction per
character instead of one, which is what a character model pays for every word.

Word pieces (`kind = "bpe"`): byte-pair encoding learned by SentencePiece (``sentencepiece``, a small compiled
library with no dependencies, in the base install because opening a model must encode its seeds), configured to
be lossless: identity normalisation, no added or removed whitespace, every character covered. Spaces are
SentencePiece's ``▁`` inside its model and a space in our token texts; a literal ``▁`` in a text is therefore
unknown (skipped, reported). The serialized SentencePiece model is stored in the checkpoint, so a model encodes
seeds exactly as it was trained, whatever SentencePiece version opens it. SentencePiece's own unknown piece (its
id 0) never appears in our ids: ours are SentencePiece's less one.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from typing import Any

import numpy as np

from .errors import TextgenError
from .vocab import Encoded, Vocabulary, is_forbidden_control

#: `textgen train --tokens` values, and each kind's default vocabulary size.
KINDS = ("char", "word", "bpe")
DEFAULT_SIZES = {"word": 2000, "bpe": 1000}
#: The largest vocabulary a checkpoint takes: its metadata (token texts and the SentencePiece model) must stay
#: within the checkpoint's header limit, and a softmax this wide already costs more per step than the cell.
MAX_SIZE = 16384
#: The longest token text a checkpoint accepts (SentencePiece's own limit on a piece is 16 characters; a word
#: longer than this is spelled).
MAX_TOKEN_CHARS = 64
#: A word: letters, with the one space before them.
WORD = re.compile(r" ?[^\W\d_]+")
#: SentencePiece's whitespace symbol.
_SPACE = "\u2581"
#: Text is given to the SentencePiece trainer in pieces of about this many characters, cut at newlines where
#: possible (its sentences have a length limit, and a newline inside one is an ordinary character).
_PIECE = 4000


class TokenVocabulary(Vocabulary):
    """Tokens of one or more characters, every character of the training text among them (see the module doc)."""

    kind = "tokens"

    def __init__(self, tokens: list[str]):
        check_tokens(tokens)
        self.tokens = list(tokens)
        self._index = {t: i for i, t in enumerate(self.tokens)}
        #: The single-character tokens as a character vocabulary: `encode` finds unknown characters with it.
        self._chars = Vocabulary(t for t in self.tokens if len(t) == 1 and t != _SPACE)
        self._lengths = np.array([len(t) for t in self.tokens], np.int64)

    def knows(self, ch: str) -> bool:
        return ch in self._chars

    def meta(self) -> dict[str, str]:
        return {"kind": self.kind}

    def describe(self) -> str:
        return f"{len(self):,} {NAMES[self.kind]}"

    def encode(self, text: str) -> Encoded:
        """Encode `text`, skipping (and reporting) characters the training text did not have."""
        known = self._chars.encode(text)
        clean = text if not known.unknown else self._chars.decode(known.ids)
        ids = self._segment(clean)
        return Encoded(ids, known.unknown)

    def _segment(self, text: str) -> np.ndarray:
        """The ids of `text`, every character of which is known."""
        raise NotImplementedError


class WordVocabulary(TokenVocabulary):
    """Words and characters (see the module doc)."""

    kind = "word"

    @classmethod
    def learn(cls, text: str, size: int | None) -> WordVocabulary:
        """Every character of `text`, then its most frequent words seen at least twice: `size` tokens, or (None)
        the default size or as many as the text has, whichever is fewer."""
        chars = sorted(set(text))
        counts = Counter(w for w in WORD.findall(text) if 1 < len(w) <= MAX_TOKEN_CHARS)
        words = [w for w, n in counts.most_common() if n >= 2]
        most = len(chars) + len(words)
        size = min(DEFAULT_SIZES[cls.kind], most) if size is None else size
        _check_size(size, len(chars), most, "words seen twice")
        return cls(chars + words[: size - len(chars)])

    def _segment(self, text: str) -> np.ndarray:
        index = self._index
        ids: list[int] = []
        at = 0
        for m in WORD.finditer(text):
            ids.extend(index[ch] for ch in text[at : m.start()])
            word = index.get(m.group())
            if word is None:
                ids.extend(index[ch] for ch in m.group())
            else:
                ids.append(word)
            at = m.end()
        ids.extend(index[ch] for ch in text[at:])
        return np.array(ids, np.int64)


class PieceVocabulary(TokenVocabulary):
    """Word pieces: SentencePiece's byte-pair encoding, lossless (see the module doc)."""

    kind = "bpe"

    def __init__(self, tokens: list[str], model: bytes):
        super().__init__(tokens)
        self.model = model
        self._sp = _processor(model)
        if _piece_texts(self._sp) != self.tokens:
            raise ValueError("vocabulary does not match its word-piece model")

    def meta(self) -> dict[str, str]:
        return {"kind": self.kind, "model": base64.b64encode(self.model).decode("ascii")}

    @classmethod
    def learn(cls, text: str, size: int | None) -> PieceVocabulary:
        """Byte-pair encoding of `size` pieces learned from `text` by SentencePiece; None: the default size, or as
        many as the text supports, whichever is fewer."""
        text = text.replace(_SPACE, "")
        try:
            return cls._learn(text, DEFAULT_SIZES[cls.kind] if size is None else size)
        except _TooMany as e:
            if size is not None or e.most is None or e.most <= len(set(text)):
                raise TextgenError(
                    f"--vocab-size {size or DEFAULT_SIZES[cls.kind]:,}: this text supports "
                    f"{'at most ' + format(e.most, ',') if e.most else 'fewer'} word pieces; give a smaller "
                    "--vocab-size or more text"
                ) from None
            return cls._learn(text, e.most)

    @classmethod
    def _learn(cls, text: str, size: int) -> PieceVocabulary:
        import io

        import sentencepiece as spm

        _check_size(size, len(set(text)), None, "")
        out = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(_pieces(text)),
                model_writer=out,
                vocab_size=size + 1,  # its unknown piece, which our ids leave out
                model_type="bpe",
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                add_dummy_prefix=False,
                split_by_whitespace=True,
                allow_whitespace_only_pieces=True,
                character_coverage=1.0,
                byte_fallback=False,
                split_digits=False,
                max_sentence_length=4 * _PIECE + 16,
                unk_id=0,
                bos_id=-1,
                eos_id=-1,
                pad_id=-1,
                minloglevel=3,
                num_threads=1,
            )
        except RuntimeError as e:  # "Vocabulary size too high (N). Please set it to a value <= M."
            limit = re.search(r"<= (\d+)", str(e))
            raise _TooMany(int(limit.group(1)) - 1 if limit else None) from None
        model = out.getvalue()
        return cls(_piece_texts(_processor(model)), model)

    def _segment(self, text: str) -> np.ndarray:
        ids = np.array(self._sp.encode(text), np.int64) - 1
        # The configuration makes SentencePiece lossless over known characters; check it rather than trust it,
        # as a silently changed text would be scored and continued as if the user had typed it.
        if (ids < 0).any() or self.decode(ids) != text:
            raise TextgenError("the word-piece model did not encode this text exactly; please report it")
        return ids


class _TooMany(Exception):
    """SentencePiece cannot learn as many pieces from the text; `most` is how many it can (ours: one fewer than
    its count, which includes its unknown piece), None where it did not say."""

    def __init__(self, most: int | None):
        super().__init__(most)
        self.most = most


NAMES = {"char": "characters", "word": "words and characters", "bpe": "word pieces"}
_CLASSES: dict[str, Any] = {"word": WordVocabulary, "bpe": PieceVocabulary}


def learn(kind: str, text: str, size: int | None) -> Vocabulary:
    """The vocabulary of kind `kind` for the training text `text`: `size` tokens, refused in one line where the
    text cannot hold that many, or (None) the kind's default size, fewer where the text cannot hold it."""
    if kind == "char":
        return Vocabulary.from_text(text)
    if kind not in _CLASSES:
        raise TextgenError(f"unknown token kind {kind!r}; use one of {', '.join(KINDS)}")
    return _CLASSES[kind].learn(text, size)


def from_meta(tokens: list[str], meta: object) -> Vocabulary:
    """The vocabulary a checkpoint or resume file stores: its token list and `Vocabulary.meta` (None or absent
    for characters). Raises ValueError with a short reason on anything damaged."""
    if meta is None:
        return Vocabulary(tokens)
    if not isinstance(meta, dict) or meta.get("kind") not in _CLASSES:
        raise ValueError("token kind is not one this textgen knows")
    if meta["kind"] == "word":
        return WordVocabulary(tokens)
    model = meta.get("model")
    if not isinstance(model, str):
        raise ValueError("word-piece vocabulary lacks its model")
    try:
        data = base64.b64decode(model.encode("ascii"), validate=True)
    except ValueError:
        raise ValueError("word-piece model is not base64") from None
    return PieceVocabulary(tokens, data)


def check_tokens(tokens: object) -> None:
    """Refuse a token list no vocabulary can be: raises ValueError with a short reason."""
    if not isinstance(tokens, list) or not all(isinstance(t, str) and 0 < len(t) <= MAX_TOKEN_CHARS for t in tokens):
        raise ValueError(f"vocabulary is not a list of texts of 1 to {MAX_TOKEN_CHARS} characters")
    if len(set(tokens)) != len(tokens):
        raise ValueError("vocabulary has repeated tokens")
    if any("\ud800" <= c <= "\udfff" or is_forbidden_control(c) for t in tokens for c in t):
        raise ValueError("vocabulary contains terminal control characters or lone surrogates")
    if len(tokens) > MAX_SIZE:
        raise ValueError(f"vocabulary has more than {MAX_SIZE:,} tokens")


def _check_size(size: int, chars: int, most: int | None, what: str) -> None:
    """Refuse a vocabulary size that cannot hold the text's characters plus one longer token, or more than the
    text supports (`most`, where it is known before learning)."""
    if size > MAX_SIZE:
        raise TextgenError(f"--vocab-size {size:,} is more than {MAX_SIZE:,}; give a smaller one")
    if size <= chars:
        raise TextgenError(
            f"--vocab-size {size:,} leaves no room beyond the text's {chars:,} characters; give at least {chars + 1:,}"
        )
    if most is not None and size > most:
        raise TextgenError(
            f"--vocab-size {size:,}: this text has only {most - chars:,} {what} beyond its {chars:,} characters; "
            f"give at most {most:,} or more text"
        )


def _pieces(text: str) -> list[str]:
    """`text` in pieces of about `_PIECE` characters for SentencePiece's trainer, cut after a newline where one is
    near."""
    out, at = [], 0
    while at < len(text):
        end = min(at + _PIECE, len(text))
        if end < len(text):
            nl = text.rfind("\n", at + _PIECE // 2, end)
            end = nl + 1 if nl >= 0 else end
        out.append(text[at:end])
        at = end
    return out


def _piece_texts(sp: Any) -> list[str]:
    """Our token texts of a SentencePiece model: its pieces after its unknown piece, spaces as spaces."""
    return [sp.id_to_piece(i).replace(_SPACE, " ") for i in range(1, sp.get_piece_size())]


def _processor(model: bytes) -> Any:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(model)
    except (RuntimeError, OSError, TypeError):
        raise ValueError("word-piece model is damaged") from None
    if sp.get_piece_size() < 2 or sp.id_to_piece(0) != "<unk>":
        raise ValueError("word-piece model is damaged")
    return sp
