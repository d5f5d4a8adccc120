"""chargen's data: where the text comes from, and the windows cut from it.

Sources (``config.data.source``):

* ``embedded`` (the default): the topic pages of Python's own reference manual, which every
  CPython install ships as ``pydoc_data.topics`` (about 465k characters of English prose with
  code). It is real text, needs no network and is on every machine that runs seqjax.
* ``file``: a local UTF-8 text file, ``data.text_file=PATH``.
* ``tiny_shakespeare``: TFDS ``tiny_shakespeare`` through ``tfds.data_source`` (no
  TensorFlow), with its own train and validation splits; needs the dataset prepared or a network.

Embedded text and files are split at a character position, the first ``train_fraction`` for
training and the rest for validation. The vocabulary holds the distinct characters of both.

Training examples (``data.mode``), batched by :func:`seqjax.data.train_batches`:

* ``windows``: every window of ``seq_len + 1`` characters of the training text, in a fresh
  shuffled order each epoch.
* ``tbptt``: stateful truncated BPTT. The training text is cut into ``batch_size`` contiguous
  lanes; step ``s`` reads window ``s mod W`` of every lane (in order, not shuffled), and
  ``reset`` is 1 at ``s mod W == 0`` so the model clears the carried state when a pass restarts.

Validation: the first ``eval_windows`` non-overlapping ``seq_len``-character windows of the
validation text, each predicted from a zero state.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from experiments.chargen.configs import default
from seqjax.data import CharVocab, eval_batches, read_text_file, train_batches
from seqjax.train import Data
from seqjax.train.config import check_inactive, check_keys
from seqjax.train.config import is_int as _is_int
from seqjax.train.config import require as _need

SOURCES = ("embedded", "file", "tiny_shakespeare")
MODES = ("windows", "tbptt")


def embedded_text() -> str:
    """Python's reference-manual topics, as shipped with CPython (``pydoc_data``)."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # some distributions strip it; say what to do instead
        raise ValueError("the embedded corpus needs Python's pydoc_data module, which this Python lacks; "
                         "pass --config.data.source=file --config.data.text_file=PATH to train on a local "
                         "UTF-8 file") from e
    return "\n\n".join(topics[k].strip() for k in sorted(topics)) + "\n"


def check_config(config) -> None:
    """Validates ``config.data``; a key that the chosen source would ignore fails."""
    d, defaults = config.data, default.get_config()
    check_keys(config, defaults)
    _need(d.source in SOURCES, "data.source", d.source, f"expected one of {', '.join(SOURCES)}")
    _need(d.mode in MODES, "data.mode", d.mode, f"expected one of {', '.join(MODES)}")
    for key in ("seq_len", "eval_windows"):
        _need(_is_int(d[key]) and d[key] >= 1, f"data.{key}", d[key], "expected an integer >= 1")
    _need(0.0 < d.train_fraction < 1.0, "data.train_fraction", d.train_fraction, "expected a number in (0, 1)")
    source = f"(this config has data.source={d.source!r})"
    check_inactive(config, defaults, ["data.text_file"], d.source == "file", f"data.source='file' {source}")
    _need(d.source != "file" or bool(d.text_file), "data.text_file", d.text_file,
          "data.source='file' needs a path: --config.data.text_file=PATH")
    check_inactive(config, defaults, ["data.tfds_data_dir"], d.source == "tiny_shakespeare",
                   f"data.source='tiny_shakespeare' {source}")
    check_inactive(config, defaults, ["data.train_fraction"], d.source != "tiny_shakespeare",
                   f"data.source='embedded' or 'file' (tiny_shakespeare has its own validation split) {source}")


def load_texts(d) -> tuple[str, str, str]:
    """``(train_text, val_text, description)`` for ``config.data``."""
    need = d.seq_len + 1
    if d.source == "tiny_shakespeare":
        from seqjax.data.tfds_source import tiny_shakespeare_text

        train = tiny_shakespeare_text("train", d.tfds_data_dir or None)
        val = tiny_shakespeare_text("validation", d.tfds_data_dir or None)
        desc = "TFDS tiny_shakespeare"
    else:
        if d.source == "file":
            # both splits must hold one window: len * min(f, 1 - f) >= seq_len + 1
            frac = min(d.train_fraction, 1.0 - d.train_fraction)
            text = read_text_file(d.text_file, min_chars=math.ceil(need / frac))
            desc = f"file {d.text_file}"
        else:
            text = embedded_text()
            desc = "embedded Python reference topics (pydoc_data)"
        cut = int(len(text) * d.train_fraction)
        train, val = text[:cut], text[cut:]
    for name, part in (("training", train), ("validation", val)):
        if len(part) < need:
            raise ValueError(f"the {name} split of {desc} has {len(part)} characters; a window needs at least "
                             f"{need} (seq_len + 1). Use a longer text or a smaller --config.data.seq_len")
    return train, val, desc


class Windows:
    """Windows of ``length + 1`` ids starting every ``stride`` ids: item ``i`` is
    ``{"tokens": ids[s : s + length], "targets": ids[s + 1 : s + length + 1]}`` with ``s = i * stride``."""

    def __init__(self, ids: np.ndarray, length: int, stride: int = 1, count: int | None = None):
        self.ids, self.length, self.stride = ids, length, stride
        self.count = (len(ids) - length - 1) // stride + 1 if count is None else count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict:
        s = int(i) * self.stride
        chunk = self.ids[s:s + self.length + 1]
        return {"tokens": chunk[:-1], "targets": chunk[1:]}


class Lanes:
    """Truncated-BPTT windows: the ids cut into ``lanes`` contiguous lanes, ``W`` windows each.

    Item ``i = w * lanes + lane`` is window ``w`` of lane ``lane``, so rows ``[s B, (s + 1) B)``
    of the stream (``B = lanes``) are window ``s mod W`` of every lane; ``reset`` is 1 at ``w = 0``."""

    def __init__(self, ids: np.ndarray, length: int, lanes: int):
        self.ids, self.length, self.lanes = ids, length, lanes
        self.lane_length = len(ids) // lanes
        self.windows = (self.lane_length - 1) // length
        if self.windows < 1:
            raise ValueError(f"tbptt needs at least one {length}-character window per lane; the training text "
                             f"({len(ids)} characters) split into {lanes} lanes is too short")

    def __len__(self) -> int:
        return self.windows * self.lanes

    def __getitem__(self, i: int) -> dict:
        w, lane = divmod(int(i), self.lanes)
        s = lane * self.lane_length + w * self.length
        chunk = self.ids[s:s + self.length + 1]
        return {"tokens": chunk[:-1], "targets": chunk[1:], "reset": np.float32(w == 0)}


@dataclasses.dataclass
class CharData(Data):
    vocab: CharVocab
    train_ids: np.ndarray  # the encoded training text
    val_text: str
    description: str


def load(config) -> CharData:
    """Reads and encodes the text and builds the batches; bad input raises ValueError."""
    check_config(config)
    d = config.data
    train_text, val_text, desc = load_texts(d)
    vocab = CharVocab.from_text(train_text + val_text)
    ids, val_ids = vocab.encode(train_text), vocab.encode(val_text)
    T, B = d.seq_len, config.train.batch_size
    if d.mode == "windows":
        train = train_batches(Windows(ids, T), B, config.seed)
    else:
        train = train_batches(Lanes(ids, T, B), B, config.seed, shuffle=False)
    n = min(d.eval_windows, (len(val_ids) - 1) // T)
    val = eval_batches(Windows(val_ids, T, stride=T, count=n), config.eval.batch_size)
    metadata = {"vocab": json.loads(vocab.to_json()), "corpus": desc}
    return CharData(train=train, val=val, metadata=metadata, vocab=vocab, train_ids=ids, val_text=val_text,
                    description=desc)
