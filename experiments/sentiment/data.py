"""Sentiment data for an N -> 1 classifier: read a review, predict its polarity (0 = neg, 1 = pos).

Sources (``config.data.source``; every key is in ``configs/default.py``):

* ``imdb_reviews``: TFDS imdb_reviews (text, label), its train and test splits.
* ``glue/sst2``: TFDS glue/sst2 (sentence, label). Its test labels are -1, so its validation
  split is the test split.
* ``imdb_dir``: an unpacked aclImdb directory at ``data.path`` (train/pos, train/neg, test/pos,
  test/neg, one review per .txt file).
* ``csv`` | ``jsonl``: a file at ``data.path`` with a text and a label column (``text_column``,
  ``label_column``). The test split is ``data.test_path`` if given, else ``test_fraction`` of
  ``path``, held out with a fixed seed (0) so every run tests on the same rows.
* ``generated``: synthetic marker-word reviews (below), no files needed.

TFDS splits are read by Grain straight from ``tfds.data_source`` (no TensorFlow). Validation is
``val_fraction`` of the training split, held out by a shuffle seeded with the run seed, before the
vocabulary (the ``vocab_size - 2`` most frequent training words, PAD = 0 and OOV = 1 reserved) is
built, so words seen only in validation or test map to OOV. Text is lower-cased and tokenised by
:func:`seqjax.data.tokenize`, cut to ``max_len`` tokens (the first, ``truncate='head'``, or the
last, ``'tail'``) and padded. Bad input raises ValueError naming the example, before anything is
written.

Generated data: every review is a run of random filler words with exactly one marker word,
'great' (label 1) or 'awful' (label 0), at a uniformly random position. A model that reads only
the last step, or reads padding as input, cannot beat chance.

Batches (:mod:`seqjax.data.pipeline`): ``tokens`` int32 (B, max_len), ``lengths`` int32 (B,) all
>= 1, ``labels`` int32 (B,), ``weight`` float32 (B,).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from experiments.sentiment.configs import default
from seqjax.data import (
    PAD_ID,
    ArraySource,
    WordVocab,
    eval_batches,
    pad_batch,
    read_text_file,
    tokenize,
    train_batches,
)
from seqjax.data.table import read_csv, read_jsonl
from seqjax.train import Data
from seqjax.train.config import check_inactive, check_keys
from seqjax.train.config import is_int as _is_int
from seqjax.train.config import require as _need

SOURCES = ("imdb_reviews", "glue/sst2", "imdb_dir", "csv", "jsonl", "generated")
TFDS_SOURCES = ("imdb_reviews", "glue/sst2")
MARKERS = ("awful", "great")  # MARKERS[label] decides the label of a generated example
GENERATED_KEYS = ("gen_train_size", "gen_test_size", "gen_min_len", "gen_max_len", "gen_num_fillers", "gen_seed")

# A raw example: (text, label, where) with `where` naming it in error messages.
Raw = tuple[Any, Any, str]


def check_config(config) -> None:
    """Validates ``config.data``; a key that the chosen source would ignore fails."""
    d, defaults = config.data, default.get_config()
    check_keys(config, defaults)
    _need(d.source in SOURCES, "data.source", d.source, f"expected one of {', '.join(SOURCES)}")
    _need(_is_int(d.max_len) and d.max_len >= 1, "data.max_len", d.max_len, "expected an integer >= 1")
    _need(_is_int(d.vocab_size) and d.vocab_size >= WordVocab.num_reserved, "data.vocab_size", d.vocab_size,
          f"expected an integer >= {WordVocab.num_reserved} (the reserved PAD=0 and OOV=1 ids)")
    _need(d.truncate in ("head", "tail"), "data.truncate", d.truncate, "expected 'head' or 'tail'")
    for key in ("val_fraction", "test_fraction"):
        _need(0.0 <= d[key] < 1.0, f"data.{key}", d[key], "expected a number in [0, 1)")
    source = f"(this config has data.source={d.source!r})"
    check_inactive(config, defaults, ["data.path"], d.source in ("imdb_dir", "csv", "jsonl"),
                   f"data.source='imdb_dir', 'csv' or 'jsonl' {source}")
    check_inactive(config, defaults, ["data.test_path", "data.text_column", "data.label_column", "data.test_fraction"],
                   d.source in ("csv", "jsonl"), f"data.source='csv' or 'jsonl' {source}")
    check_inactive(config, defaults, ["data.test_fraction"], not d.test_path,
                   f"no data.test_path (this config tests on {d.test_path!r})")
    check_inactive(config, defaults, ["data.tfds_data_dir", "data.tfds_download"], d.source in TFDS_SOURCES,
                   f"a TFDS data.source, 'imdb_reviews' or 'glue/sst2' {source}")
    check_inactive(config, defaults, [f"data.{k}" for k in GENERATED_KEYS], d.source == "generated",
                   f"data.source='generated' {source}")
    if d.source in ("imdb_dir", "csv", "jsonl"):
        _need(bool(d.path), "data.path", d.path, f"data.source={d.source!r} needs --config.data.path=PATH")
    if d.source == "generated":
        _need(1 <= d.gen_min_len <= d.gen_max_len and d.gen_num_fillers >= 1 and d.gen_train_size >= 1
              and d.gen_test_size >= 0, "data.gen_min_len", d.gen_min_len,
              "expected 1 <= gen_min_len <= gen_max_len, gen_num_fillers >= 1, gen_train_size >= 1, "
              "gen_test_size >= 0")
        _need(d.gen_max_len <= d.max_len, "data.gen_max_len", d.gen_max_len,
              f"must be <= data.max_len ({d.max_len}), or truncation could cut off the marker word "
              "that decides the label")
        needed = d.gen_num_fillers + len(MARKERS) + WordVocab.num_reserved
        _need(d.vocab_size >= needed, "data.vocab_size", d.vocab_size,
              f"must be >= {needed} for generated data (gen_num_fillers={d.gen_num_fillers} fillers, "
              "2 markers, PAD, OOV)")


# --------------------------------------------------------------------------- sources


def generate_marker_reviews(n: int, min_len: int, max_len: int, num_fillers: int,
                            seed) -> tuple[list[str], np.ndarray]:
    """``n`` texts of ``min_len..max_len`` words: filler words w0..w{num_fillers-1} and exactly
    one marker (MARKERS[label]) at a uniformly random position. Returns (texts, labels)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n).astype(np.int32)
    texts = []
    for label in labels:
        length = int(rng.integers(min_len, max_len + 1))
        words = [f"w{i}" for i in rng.integers(0, num_fillers, size=length)]
        words[int(rng.integers(0, length))] = MARKERS[label]
        texts.append(" ".join(words))
    return texts, labels


def _read_imdb_dir(root: str) -> tuple[list[Raw], list[Raw]]:
    if not os.path.isdir(root):
        raise ValueError(f"source 'imdb_dir' needs data.path= an aclImdb directory, got {root!r}")
    subdirs = [f"{s}/{p}" for s in ("train", "test") for p in ("pos", "neg")]
    missing = [d for d in subdirs if not os.path.isdir(os.path.join(root, d))]
    if missing:
        raise ValueError(f"aclImdb directory {root} is missing {', '.join(missing)} (expected "
                         f"{', '.join(subdirs)}, one review per .txt file)")
    out: dict[str, list[Raw]] = {"train": [], "test": []}
    for sub in subdirs:
        split, polarity = sub.split("/")
        folder = os.path.join(root, sub)
        files = sorted(f for f in os.listdir(folder) if f.endswith(".txt"))
        if not files:
            raise ValueError(f"aclImdb directory {folder} has no .txt reviews")
        for name in files:
            path = os.path.join(folder, name)
            out[split].append((read_text_file(path, min_chars=0), int(polarity == "pos"), f"file {path}"))
    return out["train"], out["test"]


def _read_file(path: str, fmt: str, text_col: str, label_col: str) -> list[Raw]:
    if not os.path.isfile(path):
        raise ValueError(f"source {fmt!r} needs data.path= an existing .{fmt} file, got {path!r}")
    if fmt == "csv":
        table = read_csv(path)
        table.require([text_col, label_col])
    else:
        table = read_jsonl(path, [text_col, label_col])
    return [(row[text_col], row[label_col], table.where(i)) for i, row in enumerate(table.rows)]


def _read_tfds(name: str, split: str, text_col: str, data_dir, download: bool) -> list[Raw]:
    from seqjax.data.tfds_source import load_split, to_records

    records = to_records(load_split(name, split, data_dir, download), fields=[text_col, "label"])
    return [(r[text_col], r["label"], f"{name} {split} example {i}") for i, r in enumerate(records)]


def _holdout(items: list, fraction: float, seed) -> tuple[list, list]:
    """Shuffles ``items`` with ``seed``; returns (rest, held out), the held out being ``fraction``."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_out = int(round(len(items) * fraction))
    return [items[i] for i in order[n_out:]], [items[i] for i in order[:n_out]]


def _raw_splits(d) -> tuple[list[Raw], list[Raw]]:
    if d.source == "generated":
        def gen(n, seed, split):
            texts, labels = generate_marker_reviews(n, d.gen_min_len, d.gen_max_len, d.gen_num_fillers, seed)
            return [(t, int(y), f"generated {split} example {i}")
                    for i, (t, y) in enumerate(zip(texts, labels, strict=True))]

        return gen(d.gen_train_size, [d.gen_seed, 0], "train"), gen(d.gen_test_size, [d.gen_seed, 1], "test")
    if d.source == "imdb_dir":
        return _read_imdb_dir(d.path)
    if d.source in ("csv", "jsonl"):
        cols = (d.text_column, d.label_column)
        rows = _read_file(d.path, d.source, *cols)
        if d.test_path:
            return rows, _read_file(d.test_path, d.source, *cols)
        return _holdout(rows, d.test_fraction, seed=0)
    name, text_col = ("imdb_reviews", "text") if d.source == "imdb_reviews" else ("glue/sst2", "sentence")
    test_split = "test" if d.source == "imdb_reviews" else "validation"
    args = (text_col, d.tfds_data_dir or None, bool(d.tfds_download))
    return _read_tfds(name, "train", *args), _read_tfds(name, test_split, *args)


# --------------------------------------------------------------------------- validation


def _label(value: Any, where: str) -> int:
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and value in (0, 1):
        return int(value)
    raise ValueError(f"{where}: label must be 0 or 1, got {value!r}")


def _tokens(value: Any, where: str) -> list[str]:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ValueError(f"{where}: review text must be a string, got {type(value).__name__} {value!r:.60}")
    tokens = tokenize(value)
    if not tokens:
        raise ValueError(f"{where}: review text is empty (no words after tokenisation): {value!r:.60}")
    return tokens


# --------------------------------------------------------------------------- splits


@dataclasses.dataclass(frozen=True)
class Split:
    tokens: np.ndarray  # int32 (N, max_len), PAD after each review
    lengths: np.ndarray  # int32 (N,), 1 <= length <= max_len
    labels: np.ndarray  # int32 (N,), 0 or 1

    def __len__(self) -> int:
        return len(self.labels)

    def source(self) -> ArraySource:
        return ArraySource(tokens=self.tokens, lengths=self.lengths, labels=self.labels)


def encode(vocab: WordVocab, texts, max_len: int, keep: str = "head") -> tuple[np.ndarray, np.ndarray]:
    """``(tokens (N, max_len), lengths (N,))`` of texts or token lists, padded with PAD."""
    return pad_batch([vocab.encode(t, max_len, keep) for t in texts], PAD_ID, max_len)


def _encode(rows: list[tuple[list[str], int]], vocab: WordVocab, max_len: int, keep: str) -> Split:
    if not rows:
        return Split(np.zeros((0, max_len), np.int32), np.zeros((0,), np.int32), np.zeros((0,), np.int32))
    tokens, lengths = encode(vocab, [t for t, _ in rows], max_len, keep)
    return Split(tokens, lengths, np.array([y for _, y in rows], np.int32))


@dataclasses.dataclass(frozen=True)
class Splits:
    vocab: WordVocab
    train: Split
    val: Split
    test: Split


def read_splits(config) -> Splits:
    """Reads the configured source, validates every example, holds out validation from train
    (shuffled with the run seed), builds the vocabulary from what remains and encodes all three."""
    check_config(config)
    d = config.data
    raw_train, raw_test = _raw_splits(d)

    def clean(raw: list[Raw]) -> list[tuple[list[str], int]]:
        return [(_tokens(text, where), _label(label, where)) for text, label, where in raw]

    train, test = clean(raw_train), clean(raw_test)
    if not train:
        raise ValueError(f"source {d.source!r} gave no training examples")
    train, val = _holdout(train, d.val_fraction, seed=int(config.seed))
    if not train:
        raise ValueError(f"data.val_fraction={d.val_fraction} leaves no training examples")
    vocab = WordVocab.build((tokens for tokens, _ in train), max_size=d.vocab_size)
    return Splits(vocab, *(_encode(rows, vocab, d.max_len, d.truncate) for rows in (train, val, test)))


@dataclasses.dataclass
class SentimentData(Data):
    test: Any  # padded test batches, as val
    splits: Splits


def load(config) -> SentimentData:
    splits = read_splits(config)
    metadata = {"vocab": {"kind": "word", "words": list(splits.vocab.words)}, "max_len": config.data.max_len,
                "truncate": config.data.truncate}
    return SentimentData(
        train=train_batches(splits.train.source(), config.train.batch_size, config.seed),
        val=eval_batches(splits.val.source(), config.eval.batch_size),
        test=eval_batches(splits.test.source(), config.eval.batch_size),
        metadata=metadata, splits=splits)
