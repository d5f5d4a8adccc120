"""Text vocabularies, a careful file reader and batch padding.

Two vocabularies cover the experiments:

* `CharVocab` for character models (chargen): ids are the positions of the sorted distinct
  characters of a training text.
* `WordVocab` for word models (sentiment): the most frequent words of a training split, with
  PAD = 0 and OOV = 1 reserved.

Both round-trip through JSON (`to_json()` / `from_json()`), so a run can store its vocabulary
beside its checkpoints and `sample` / `predict` can rebuild it from the workdir alone.
"""

from __future__ import annotations

import collections
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "CharVocab",
    "WordVocab",
    "tokenize",
    "read_text_file",
    "pad_batch",
    "PAD_ID",
    "OOV_ID",
]

PAD_ID = 0
OOV_ID = 1


def _load_json(data: str | Mapping, kind: str) -> Mapping:
    obj = json.loads(data) if isinstance(data, str | bytes) else data
    if not isinstance(obj, Mapping) or obj.get("kind") != kind:
        got = obj.get("kind") if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"expected a serialised {kind} vocabulary (kind={kind!r}), got kind={got!r}")
    return obj


def _codepoints(text: str) -> np.ndarray:
    """Unicode code points of `text` as uint32, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class CharVocab:
    """Character vocabulary: id `i` is the i-th of the sorted distinct characters.

    Encoding a character outside the vocabulary raises `ValueError` naming it.
    """

    def __init__(self, chars: Sequence[str]):
        chars = tuple(chars)
        if not chars:
            raise ValueError("a CharVocab needs at least one character, got none")
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"CharVocab entries must be single characters, got {bad[:5]!r}")
        if len(set(chars)) != len(chars):
            dups = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"CharVocab characters must be distinct, got duplicates {dups!r}")
        self.chars = chars
        cps = _codepoints("".join(chars))
        order = np.argsort(cps, kind="stable")
        self._sorted_cps = cps[order]
        self._sorted_ids = order.astype(np.int32)

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Builds the vocabulary of the sorted distinct characters of `text`."""
        if not text:
            raise ValueError("cannot build a CharVocab from an empty text")
        return cls(sorted(set(text)))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"CharVocab(size={self.size})"

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text`, int32 of shape (len(text),)."""
        if not isinstance(text, str):
            raise TypeError(f"CharVocab.encode expects a str, got {type(text).__name__}")
        cps = _codepoints(text)
        pos = np.searchsorted(self._sorted_cps, cps)
        pos = np.minimum(pos, len(self._sorted_cps) - 1)
        known = self._sorted_cps[pos] == cps
        ids = self._sorted_ids[pos]
        if not known.all():
            missing = sorted({chr(c) for c in cps[~known]})
            raise ValueError(
                f"{int((~known).sum())} characters of the text are not in the vocabulary "
                f"of {self.size} characters: {''.join(missing[:20])!r}"
                f"{' ...' if len(missing) > 20 else ''} ({len(missing)} distinct)"
            )
        return ids.astype(np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of a sequence of ids (ids outside [0, size) raise ValueError)."""
        ids = np.asarray(ids if hasattr(ids, "__len__") else list(ids)).reshape(-1)
        if ids.size == 0:
            return ""
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
        bad = ids[(ids < 0) | (ids >= self.size)]
        if bad.size:
            raise ValueError(f"ids must lie in [0, {self.size}), got {sorted(set(bad.tolist()))[:10]}")
        return "".join(self.chars[i] for i in ids.tolist())

    def to_json(self) -> str:
        return json.dumps({"kind": "char", "chars": "".join(self.chars)})

    @classmethod
    def from_json(cls, data: str | Mapping) -> CharVocab:
        """Inverse of `to_json`; accepts the JSON string or the already parsed dict."""
        obj = _load_json(data, "char")
        return cls(list(obj["chars"]))


# A word is a run of letters/digits, optionally joined by apostrophes (don't, it's);
# any other non-space character is a token of its own (punctuation).
_TOKEN_RE = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*|[^\w\s]|_")
_BR_RE = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)


def tokenize(text: str) -> list[str]:
    """Lower-cases, drops HTML line breaks (`<br />`, `<br>`), splits into words and punctuation.

    >>> tokenize("Great film!<br /><br />I didn't like the end...")
    ['great', 'film', '!', 'i', "didn't", 'like', 'the', 'end', '.', '.', '.']
    """
    return _TOKEN_RE.findall(_BR_RE.sub(" ", text).lower())


class WordVocab:
    """Word vocabulary with PAD = 0 and OOV = 1 reserved; real words have ids 2, 3, ...

    `words` lists the real words in id order (most frequent first when made by `build`).
    """

    PAD = "<pad>"
    OOV = "<oov>"
    pad_id = PAD_ID
    oov_id = OOV_ID
    num_reserved = 2

    def __init__(self, words: Sequence[str]):
        words = tuple(words)
        if len(set(words)) != len(words):
            raise ValueError("WordVocab words must be distinct")
        clash = {self.PAD, self.OOV} & set(words)
        if clash:
            raise ValueError(f"{sorted(clash)} are reserved tokens and cannot be vocabulary words")
        self.words = words
        self._ids = {w: i + self.num_reserved for i, w in enumerate(words)}

    @classmethod
    def build(cls, texts: Iterable[str | Sequence[str]], max_size: int, min_count: int = 1) -> WordVocab:
        """Keeps the `max_size - 2` most frequent words seen at least `min_count` times.

        `max_size` counts the reserved PAD and OOV ids. Equal counts are ordered
        alphabetically, so the result does not depend on the order of `texts`. Each item of
        `texts` is a string (run through `tokenize`) or an already tokenised list of words.
        """
        if not isinstance(max_size, int | np.integer) or max_size < cls.num_reserved:
            raise ValueError(
                f"vocabulary size must be at least {cls.num_reserved} (the reserved ids "
                f"PAD={PAD_ID} and OOV={OOV_ID}), got {max_size!r}"
            )
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts = collections.Counter()
        for item in texts:
            counts.update(tokenize(item) if isinstance(item, str) else item)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(ranked[: int(max_size) - cls.num_reserved])

    @property
    def size(self) -> int:
        return len(self.words) + self.num_reserved

    def __len__(self) -> int:
        return self.size

    def __eq__(self, other) -> bool:
        return isinstance(other, WordVocab) and self.words == other.words

    def __repr__(self) -> str:
        return f"WordVocab(size={self.size})"

    def __contains__(self, word: str) -> bool:
        return word in self._ids

    def id_of(self, word: str) -> int:
        return self._ids.get(word, OOV_ID)

    def encode(self, text: str | Sequence[str], max_len: int, keep: str = "head") -> np.ndarray:
        """Ids of the first (`keep="head"`) or last (`keep="tail"`, as Keras' pad_sequences does)
        `max_len` tokens (unknown words -> OOV), int32, unpadded."""
        if not isinstance(max_len, int | np.integer) or max_len <= 0:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
        if keep not in ("head", "tail"):
            raise ValueError(f"keep must be 'head' or 'tail', got {keep!r}")
        tokens = tokenize(text) if isinstance(text, str) else text
        tokens = tokens[:max_len] if keep == "head" else tokens[-max_len:]
        get = self._ids.get
        return np.array([get(t, OOV_ID) for t in tokens], dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """Space-joined words of `ids`, PAD dropped and OOV shown as `<oov>`."""
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if not 0 <= i < self.size:
                raise ValueError(f"ids must lie in [0, {self.size}), got {i}")
            if i != PAD_ID:
                out.append(self.OOV if i == OOV_ID else self.words[i - self.num_reserved])
        return " ".join(out)

    def to_json(self) -> str:
        return json.dumps({"kind": "word", "words": list(self.words)})

    @classmethod
    def from_json(cls, data: str | Mapping) -> WordVocab:
        """Inverse of `to_json`; accepts the JSON string or the already parsed dict."""
        return cls(_load_json(data, "word")["words"])


def read_text_file(path: str | os.PathLike, min_chars: int = 1) -> str:
    """Reads a whole UTF-8 file (a leading BOM is dropped, newlines are kept as they are).

    Raises ValueError if the file is not UTF-8 (naming the byte offset) or has fewer than
    `min_chars` characters.
    """
    with open(path, "rb") as f:
        data = f.read()
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = e.start + skip
        raise ValueError(
            f"{os.fspath(path)} is not valid UTF-8: byte 0x{data[offset]:02x} at byte offset "
            f"{offset} ({e.reason}); re-encode it as UTF-8 (e.g. iconv -t UTF-8)"
        ) from None
    if len(text) < min_chars:
        what = "is empty" if not text else f"has only {len(text)} characters"
        raise ValueError(f"{os.fspath(path)} {what}; at least {min_chars} characters are needed")
    return text


def pad_batch(
    seqs: Sequence[Sequence[int]], pad_id: int = PAD_ID, max_len: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads id sequences into `(tokens int32 (B, T), lengths int32 (B,))`.

    T is `max_len` when given (longer sequences are truncated to it), otherwise the longest
    length (at least 1, so an all-empty batch still has a time axis).
    """
    if len(seqs) == 0:
        raise ValueError("pad_batch needs at least one sequence, got an empty batch")
    if max_len is not None and max_len <= 0:
        raise ValueError(f"max_len must be positive or None, got {max_len}")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    width = int(max_len) if max_len is not None else max(int(lengths.max()), 1)
    lengths = np.minimum(lengths, width)
    tokens = np.full((len(seqs), width), pad_id, dtype=np.int32)
    for row, (seq, n) in enumerate(zip(seqs, lengths, strict=True)):
        tokens[row, :n] = np.asarray(seq[:n], dtype=np.int32)
    return tokens, lengths.astype(np.int32)
