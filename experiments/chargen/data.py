"""Character-level text for chargen: sources, splits, and deterministic batches.

Sources (``config.data``):

* ``source="embedded"`` (the default): the topic pages of Python's own reference manual, which
  every CPython install ships as ``pydoc_data.topics`` (about 465k characters of English prose
  with code). It is real text, needs no network and is on every machine that runs seqjax.
* ``source="file"`` or any non-empty ``text_file=PATH``: a local UTF-8 text file.
* ``source="tiny_shakespeare"``: TFDS ``tiny_shakespeare`` through ``tfds.data_source`` (no
  TensorFlow); needs the dataset prepared or a network.

Embedded text and files are split 90% / 10% (train / validation) at a character position, the
protocol of ../shared/data/README.md. The vocabulary holds the distinct characters of train and
validation together.

Batches are pure functions of (seed, step), so a resumed run sees the same data:

* ``mode="windows"``: ``batch_size`` random windows of ``seq_len`` characters per step.
* ``mode="tbptt"``: stateful truncated BPTT. The training text is cut into ``batch_size``
  contiguous lanes; step ``s`` reads window ``s mod W`` of every lane, and ``reset`` is 1 at
  ``s mod W == 0`` so the model clears the carried state when a pass over the lanes restarts.

Validation: the first ``eval_windows`` non-overlapping ``seq_len``-character windows of the
validation split, each predicted from a zero state (the comparison protocol uses 256 windows of
128).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from seqjax.data.text import CharVocab, read_text_file

SOURCES = ("embedded", "file", "tiny_shakespeare")
MODES = ("windows", "tbptt")


def embedded_text() -> str:
    """Python's reference-manual topics, as shipped with CPython (``pydoc_data``)."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # some distributions strip it; say what to do instead
        raise ValueError("the embedded corpus needs Python's pydoc_data module, which this Python lacks; "
                         "pass --config.data.text_file=PATH to train on a local UTF-8 file") from e
    return "\n\n".join(topics[k].strip() for k in sorted(topics)) + "\n"


def load_texts(cfg) -> tuple[str, str, str]:
    """Returns ``(train_text, val_text, description)`` for ``config.data``."""
    source = "file" if cfg.text_file else cfg.source
    if source not in SOURCES:
        raise ValueError(f"unknown data.source {source!r}; expected one of {SOURCES}")
    need = cfg.seq_len + 1
    if source == "tiny_shakespeare":
        from seqjax.data.tfds_source import tiny_shakespeare_text

        train = tiny_shakespeare_text("train", cfg.tfds_data_dir or None)
        val = tiny_shakespeare_text("validation", cfg.tfds_data_dir or None)
        desc = "TFDS tiny_shakespeare"
    else:
        if source == "file":
            if not cfg.text_file:
                raise ValueError("data.source='file' needs --config.data.text_file=PATH")
            # both splits must hold one window: len * min(f, 1 - f) >= seq_len + 1
            frac = min(cfg.train_fraction, 1.0 - cfg.train_fraction)
            if not 0.0 < frac:
                raise ValueError(f"data.train_fraction must lie in (0, 1), got {cfg.train_fraction}")
            text = read_text_file(cfg.text_file, min_chars=math.ceil(need / frac))
            desc = f"file {cfg.text_file}"
        else:
            text = embedded_text()
            desc = "embedded Python reference topics (pydoc_data)"
        cut = int(len(text) * cfg.train_fraction)
        train, val = text[:cut], text[cut:]
    for name, part in (("training", train), ("validation", val)):
        if len(part) < need:
            raise ValueError(f"the {name} split of {desc} has {len(part)} characters; a window needs at least "
                             f"{need} (seq_len + 1). Use a longer text or a smaller --config.data.seq_len")
    return train, val, desc


@dataclasses.dataclass
class CharData:
    vocab: CharVocab
    train: np.ndarray  # int32 ids
    val: np.ndarray
    seq_len: int
    batch_size: int
    seed: int
    mode: str
    eval_windows: int
    description: str

    def train_batch(self, step: int) -> dict[str, np.ndarray]:
        T, B = self.seq_len, self.batch_size
        if self.mode == "windows":
            rng = np.random.default_rng([self.seed, step])
            starts = rng.integers(0, len(self.train) - T, size=B)
            reset = np.ones((B,), np.float32)
        else:
            lane = len(self.train) // B
            per_lane = (lane - 1) // T
            w = step % per_lane
            starts = np.arange(B) * lane + w * T
            reset = np.full((B,), 1.0 if w == 0 else 0.0, np.float32)
        idx = starts[:, None] + np.arange(T + 1)[None, :]
        chunk = self.train[idx]
        return {"tokens": chunk[:, :-1], "targets": chunk[:, 1:], "reset": reset}

    def eval_batches(self, batch_size: int | None = None):
        T = self.seq_len
        n = min(self.eval_windows, (len(self.val) - 1) // T)
        bs = batch_size or self.batch_size
        for lo in range(0, n, bs):
            starts = np.arange(lo, min(n, lo + bs)) * T
            idx = starts[:, None] + np.arange(T + 1)[None, :]
            chunk = self.val[idx]
            yield {"tokens": chunk[:, :-1], "targets": chunk[:, 1:]}


def load(cfg_data, batch_size: int, seed: int) -> CharData:
    if cfg_data.mode not in MODES:
        raise ValueError(f"unknown data.mode {cfg_data.mode!r}; expected one of {MODES}")
    if cfg_data.seq_len < 1:
        raise ValueError(f"data.seq_len must be >= 1, got {cfg_data.seq_len}")
    train, val, desc = load_texts(cfg_data)
    vocab = CharVocab.from_text(train + val)
    data = CharData(vocab, vocab.encode(train), vocab.encode(val), cfg_data.seq_len, batch_size, seed,
                    cfg_data.mode, cfg_data.eval_windows, desc)
    if cfg_data.mode == "tbptt" and (len(train) // batch_size - 1) // cfg_data.seq_len < 1:
        raise ValueError(f"tbptt needs at least one {cfg_data.seq_len}-char window per lane; the training text "
                         f"({len(train)} chars) split into {batch_size} lanes is too short")
    return data
