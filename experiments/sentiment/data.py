"""Sentiment data for an N->1 classifier: read a review, predict its polarity (0 = neg, 1 = pos).

`load_sentiment(cfg.data, seed)` returns a `SentimentData` with a word vocabulary and three
padded splits. Config keys (`cfg.data.*`, a ConfigDict or a dict; defaults in brackets):

  source          where reviews come from ['generated']:
                    'imdb_reviews'  TFDS imdb_reviews (text, label), train and test splits
                    'glue/sst2'     TFDS glue/sst2 (sentence, label); its test labels are -1,
                                    so its validation split is used as the test split
                    'imdb_dir'      an unpacked aclImdb directory at `path`: train/pos,
                                    train/neg, test/pos, test/neg, one review per .txt file
                    'csv' | 'jsonl' a file at `path` with a text and a label column
                    'generated'     synthetic marker-word data (below), no files needed
  path            directory (imdb_dir) or file (csv, jsonl) [None]
  test_path       csv/jsonl only: a separate test file; without it `test_fraction` of `path`
                  is held out as test, with a fixed seed (0) so every run tests on the same rows [None]
  test_fraction   see test_path [0.2]
  text_column     csv/jsonl column holding the review ['text']
  label_column    csv/jsonl column holding 0/1 ['label']
  vocab_size      vocabulary size including PAD=0 and OOV=1 [10000]
  max_len         reviews are truncated to max_len tokens, then padded [200]
  truncate        which tokens a long review keeps: "head" (the first max_len) or "tail" (the
                  last max_len, as Keras' pad_sequences does) ["head"]
  val_fraction    fraction of train held out for validation, chosen by a shuffle seeded with
                  the run seed, before the vocabulary is built [0.2]
  tfds_data_dir   TFDS data_dir for the TFDS sources [None: $TFDS_DATA_DIR or ~/tensorflow_datasets]
  tfds_download   let TFDS try to download/prepare when no prepared copy exists [True]
  gen_train_size, gen_test_size   generated: number of train / test examples [2000, 500]
  gen_min_len, gen_max_len        generated: words per example, uniform in this range [20, 100]
  gen_num_fillers                 generated: number of distinct filler words [50]
  gen_seed                        generated: seed of the data itself, apart from the run seed [0]

Generated data: every example is a run of random filler words with exactly one marker word,
'great' (label 1) or 'awful' (label 0), at a uniformly random position. A model that reads
only the last step, or reads padding as input, cannot beat chance.

Text is lower-cased and tokenised by `seqjax.data.text.tokenize`; the vocabulary is the
`vocab_size - 2` most frequent words of the training split only (after the validation
hold-out), so words seen only in val/test map to OOV. Bad input raises ValueError naming
what was expected and what was found; nothing is written anywhere.

Batches are dicts of numpy arrays: tokens int32 (B, max_len) padded with PAD, lengths int32
(B,) all >= 1, labels int32 (B,). `train_batch` is a pure function of (seed, step);
`eval_batches` pads its last batch to the full batch size and marks real rows in `weights`.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from seqjax.data.text import PAD_ID, WordVocab, pad_batch, read_text_file, tokenize

SOURCES = ("imdb_reviews", "glue/sst2", "imdb_dir", "csv", "jsonl", "generated")
MARKERS = ("awful", "great")  # MARKERS[label] decides the label of a generated example

DEFAULTS = dict(
    source="generated",
    path=None,
    test_path=None,
    test_fraction=0.2,
    text_column="text",
    label_column="label",
    vocab_size=10000,
    max_len=200,
    truncate="head",
    val_fraction=0.2,
    tfds_data_dir=None,
    tfds_download=True,
    gen_train_size=2000,
    gen_test_size=500,
    gen_min_len=20,
    gen_max_len=100,
    gen_num_fillers=50,
    gen_seed=0,
)

# A raw example: (text, label, where) with `where` naming it in error messages.
Raw = tuple[Any, Any, str]


@dataclasses.dataclass(frozen=True)
class SentimentSplit:
    tokens: np.ndarray  # int32 (N, max_len), PAD after each review
    lengths: np.ndarray  # int32 (N,), 1 <= length <= max_len
    labels: np.ndarray  # int32 (N,), 0 or 1

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {"tokens": self.tokens[idx], "lengths": self.lengths[idx], "labels": self.labels[idx]}


@functools.lru_cache(maxsize=8)
def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, n]).permutation(n)


@dataclasses.dataclass(frozen=True)
class SentimentData:
    vocab: WordVocab
    train: SentimentSplit
    val: SentimentSplit
    test: SentimentSplit
    max_len: int

    def split(self, name: str) -> SentimentSplit:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        return getattr(self, name)

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict[str, np.ndarray]:
        """Batch `step` of an endless stream: example positions step*B ... step*B + B - 1,
        where position p is example `perm_e[p % N]` of epoch e = p // N, and `perm_e` is a
        permutation seeded by (seed, e). Pure in (seed, step), so a resumed run sees the same
        order, and each epoch shows every training example exactly once."""
        n = len(self.train)
        if n == 0:
            raise ValueError("the training split is empty")
        if batch_size <= 0 or step < 0:
            raise ValueError(f"expected batch_size > 0 and step >= 0, got {batch_size} and {step}")
        pos = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
        epochs, offsets = pos // n, pos % n
        idx = np.empty_like(pos)
        for e in np.unique(epochs):
            sel = epochs == e
            idx[sel] = _epoch_order(n, int(seed), int(e))[offsets[sel]]
        return self.train.take(idx)

    def eval_batches(self, split: str, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """All examples of `split` in order, in batches of exactly `batch_size` rows (one
        compiled shape). The last batch is filled up with dummy rows (PAD tokens, length 1,
        label 0); `weights` (float32, 1 for real rows, 0 for dummies) says which is which."""
        data = self.split(split)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        for start in range(0, len(data), batch_size):
            idx = np.arange(start, min(start + batch_size, len(data)))
            batch = data.take(idx)
            fill = batch_size - len(idx)
            batch["weights"] = np.concatenate([np.ones(len(idx)), np.zeros(fill)]).astype(np.float32)
            if fill:
                batch["tokens"] = np.concatenate(
                    [batch["tokens"], np.full((fill, self.max_len), PAD_ID, np.int32)]
                )
                batch["lengths"] = np.concatenate([batch["lengths"], np.ones(fill, np.int32)])
                batch["labels"] = np.concatenate([batch["labels"], np.zeros(fill, np.int32)])
            yield batch


# --------------------------------------------------------------------------- sources


def generate_marker_reviews(
    n: int, min_len: int, max_len: int, num_fillers: int, seed: int
) -> tuple[list[str], np.ndarray]:
    """`n` texts of `min_len..max_len` words: filler words w0..w{num_fillers-1} and exactly
    one marker (MARKERS[label]) at a uniformly random position. Returns (texts, labels)."""
    if n < 0 or not 1 <= min_len <= max_len or num_fillers < 1:
        raise ValueError(
            f"expected n >= 0, 1 <= min_len <= max_len, num_fillers >= 1; got n={n}, "
            f"min_len={min_len}, max_len={max_len}, num_fillers={num_fillers}"
        )
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
    if not root or not os.path.isdir(root):
        raise ValueError(f"source 'imdb_dir' needs path= an aclImdb directory, got {root!r}")
    subdirs = [f"{s}/{p}" for s in ("train", "test") for p in ("pos", "neg")]
    missing = [d for d in subdirs if not os.path.isdir(os.path.join(root, d))]
    if missing:
        raise ValueError(
            f"aclImdb directory {root} is missing {', '.join(missing)} (expected {', '.join(subdirs)}, "
            "one review per .txt file)"
        )
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


def _read_table(path: str, fmt: str, text_col: str, label_col: str) -> list[Raw]:
    if not path or not os.path.isfile(path):
        raise ValueError(f"source {fmt!r} needs path= an existing .{fmt} file, got {path!r}")
    text = read_text_file(path, min_chars=0)
    rows: list[Raw] = []
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        have = reader.fieldnames or []
        missing = [c for c in (text_col, label_col) if c not in have]
        if missing:
            raise ValueError(f"{path} has no column(s) {missing}; its columns are {have}")
        for i, row in enumerate(reader, start=1):
            rows.append((row[text_col], row[label_col], f"row {i} (line {reader.line_num}) of {path}"))
    else:
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"line {line_no} of {path}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where} is not valid JSON: {e.msg}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            missing = [c for c in (text_col, label_col) if c not in obj]
            if missing:
                raise ValueError(f"{where} has no field(s) {missing}; its fields are {sorted(obj)}")
            rows.append((obj[text_col], obj[label_col], where))
    if not rows:
        raise ValueError(f"{path} holds no examples")
    return rows


def _read_tfds(name: str, split: str, text_col: str, data_dir, download: bool) -> list[Raw]:
    from seqjax.data.tfds_source import load_split, to_records

    records = to_records(load_split(name, split, data_dir, download), fields=[text_col, "label"])
    return [(r[text_col], r["label"], f"{name} {split} example {i}") for i, r in enumerate(records)]


def _holdout(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """Shuffles `items` with `seed`; returns (rest, held out), the held out being `fraction`."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_out = int(round(len(items) * fraction))
    return [items[i] for i in order[n_out:]], [items[i] for i in order[:n_out]]


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


def _cfg(cfg_data: Any) -> dict[str, Any]:
    if hasattr(cfg_data, "to_dict"):  # ml_collections.ConfigDict
        cfg_data = cfg_data.to_dict()
    cfg = dict(DEFAULTS)
    cfg.update(dict(cfg_data or {}))
    if cfg["source"] not in SOURCES:
        raise ValueError(f"data.source must be one of {SOURCES}, got {cfg['source']!r}")
    max_len, vocab_size = cfg["max_len"], cfg["vocab_size"]
    if not isinstance(max_len, int) or max_len <= 0:
        raise ValueError(f"data.max_len must be a positive integer, got {max_len!r}")
    if not isinstance(vocab_size, int) or vocab_size < WordVocab.num_reserved:
        raise ValueError(
            f"data.vocab_size must be at least {WordVocab.num_reserved} (the reserved PAD=0 and "
            f"OOV=1 ids), got {vocab_size!r}"
        )
    if cfg["truncate"] not in ("head", "tail"):
        raise ValueError(f"data.truncate must be 'head' or 'tail', got {cfg['truncate']!r}")
    for key in ("val_fraction", "test_fraction"):
        if not 0.0 <= cfg[key] < 1.0:
            raise ValueError(f"data.{key} must be in [0, 1), got {cfg[key]!r}")
    if cfg["source"] == "generated":
        if cfg["gen_max_len"] > max_len:
            raise ValueError(
                f"data.gen_max_len ({cfg['gen_max_len']}) must be <= data.max_len ({max_len}), "
                "or truncation could cut off the marker word that decides the label"
            )
        needed = cfg["gen_num_fillers"] + len(MARKERS) + WordVocab.num_reserved
        if vocab_size < needed:
            raise ValueError(
                f"data.vocab_size must be >= {needed} for generated data (gen_num_fillers="
                f"{cfg['gen_num_fillers']} fillers, 2 markers, PAD, OOV), got {vocab_size}"
            )
    return cfg


# --------------------------------------------------------------------------- entry point


def _raw_splits(cfg: dict[str, Any]) -> tuple[list[Raw], list[Raw]]:
    src = cfg["source"]
    if src == "generated":

        def gen(n, seed, split):
            texts, labels = generate_marker_reviews(
                n, cfg["gen_min_len"], cfg["gen_max_len"], cfg["gen_num_fillers"], seed
            )
            return [
                (t, int(y), f"generated {split} example {i}")
                for i, (t, y) in enumerate(zip(texts, labels, strict=True))
            ]

        seed = int(cfg["gen_seed"])
        return gen(cfg["gen_train_size"], [seed, 0], "train"), gen(cfg["gen_test_size"], [seed, 1], "test")
    if src == "imdb_dir":
        return _read_imdb_dir(cfg["path"])
    if src in ("csv", "jsonl"):
        cols = (cfg["text_column"], cfg["label_column"])
        rows = _read_table(cfg["path"], src, *cols)
        if cfg["test_path"]:
            return rows, _read_table(cfg["test_path"], src, *cols)
        return _holdout(rows, cfg["test_fraction"], seed=0)
    name, text_col = ("imdb_reviews", "text") if src == "imdb_reviews" else ("glue/sst2", "sentence")
    test_split = "test" if src == "imdb_reviews" else "validation"
    args = (text_col, cfg["tfds_data_dir"], bool(cfg["tfds_download"]))
    return _read_tfds(name, "train", *args), _read_tfds(name, test_split, *args)


def _encode(
    rows: Sequence[tuple[list[str], int]], vocab: WordVocab, max_len: int, keep: str = "head"
) -> SentimentSplit:
    if not rows:
        return SentimentSplit(
            np.zeros((0, max_len), np.int32), np.zeros((0,), np.int32), np.zeros((0,), np.int32)
        )
    ids = [vocab.encode(tokens, max_len, keep) for tokens, _ in rows]
    tokens, lengths = pad_batch(ids, PAD_ID, max_len)
    return SentimentSplit(tokens, lengths, np.array([y for _, y in rows], np.int32))


def load_sentiment(cfg_data: Mapping[str, Any] | Any, seed: int) -> SentimentData:
    """Reads the configured source, validates every example, holds out validation from train
    (shuffled with `seed`), builds the vocabulary from what remains of train and encodes all
    three splits. See the module docstring for the keys of `cfg_data`."""
    cfg = _cfg(cfg_data)
    raw_train, raw_test = _raw_splits(cfg)

    def clean(raw: list[Raw]) -> list[tuple[list[str], int]]:
        return [(_tokens(text, where), _label(label, where)) for text, label, where in raw]

    train, test = clean(raw_train), clean(raw_test)
    if not train:
        raise ValueError(f"source {cfg['source']!r} gave no training examples")
    train, val = _holdout(train, cfg["val_fraction"], seed=int(seed))
    if not train:
        raise ValueError(f"val_fraction={cfg['val_fraction']} leaves no training examples")
    vocab = WordVocab.build((tokens for tokens, _ in train), max_size=cfg["vocab_size"])
    max_len = cfg["max_len"]
    return SentimentData(
        vocab=vocab,
        train=_encode(train, vocab, max_len, cfg["truncate"]),
        val=_encode(val, vocab, max_len, cfg["truncate"]),
        test=_encode(test, vocab, max_len, cfg["truncate"]),
        max_len=max_len,
    )
