"""TFDS datasets read without TensorFlow.

`tfds.data_source` opens a prepared dataset's array_record files and decodes examples with
numpy, so reading needs no TensorFlow. Preparing (downloading and converting) a dataset is
another matter: it needs a network, and for most datasets TensorFlow. For a machine with
neither:

* `load_split` turns "not prepared and cannot be prepared here" into one `DatasetUnavailableError`
  that says so and names the offline alternatives, instead of a deep stack trace;
* `write_local_dataset` writes records you already have (a local text file, a CSV) as a
  prepared array_record TFDS dataset, also without TensorFlow. Tests use it to exercise the
  real reading path, and it lets an offline machine run a TFDS config on local data.

Tests also use `tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE)`, which
patches `DatasetBuilder.as_data_source` and works without TensorFlow (see tests/test_data_text.py).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DatasetUnavailableError",
    "load_split",
    "to_records",
    "tiny_shakespeare_text",
    "write_local_dataset",
]

# Datasets still defined in the legacy packages (tensorflow_datasets/text/...) are only
# registered when their module is imported; new-style ones (tensorflow_datasets/datasets/)
# are found by name. `import tensorflow_datasets` imports the legacy packages lazily, so
# import the ones seqjax uses explicitly.
_LEGACY_MODULES = {"glue": "tensorflow_datasets.text.glue"}

# What to use instead, per dataset, when TFDS cannot provide it offline.
_OFFLINE_HINTS = {
    "tiny_shakespeare": "--config.data.source=file --config.data.text_file=PATH (any UTF-8 text file)",
    "imdb_reviews": (
        "--config.data.source=imdb_dir --config.data.path=DIR (an unpacked aclImdb directory), "
        "--config.data.source=csv|jsonl --config.data.path=FILE, or --config.data.source=generated"
    ),
}
_OFFLINE_HINTS["glue"] = _OFFLINE_HINTS["imdb_reviews"]


class DatasetUnavailableError(RuntimeError):
    """A TFDS dataset is not prepared locally and could not be prepared (e.g. no network)."""


def _tfds():
    import tensorflow_datasets as tfds  # deferred: ~0.5 s, and only TFDS sources need it

    return tfds


def _register(name: str) -> None:
    module = _LEGACY_MODULES.get(name.split("/")[0].split(":")[0])
    if module:
        importlib.import_module(module)


def _is_prepared(name: str, data_dir: str | None) -> bool:
    try:
        return bool(_tfds().builder(name, data_dir=data_dir).is_prepared())
    except Exception:  # noqa: BLE001 - any failure here means "cannot tell", i.e. not usable
        return False


def load_split(name: str, split: str, data_dir: str | None = None, download: bool = True):
    """Random-access source (len, [i]) of one split of a TFDS dataset, via `tfds.data_source`.

    Reads a prepared array_record copy from `data_dir` (default: $TFDS_DATA_DIR or
    ~/tensorflow_datasets). If none is there and `download` is true, asks TFDS to prepare it.
    When that is impossible (offline, or TensorFlow needed to prepare), raises
    `DatasetUnavailableError` naming the local alternatives.
    """
    tfds = _tfds()
    _register(name)
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except tfds.core.registered.DatasetNotFoundError:
        raise
    except Exception as first:  # noqa: BLE001
        if _is_prepared(name, data_dir):
            raise  # the data is there; this is a real error (a bad split name, ...)
        cause: BaseException = first
        if download:
            try:
                return tfds.data_source(name, split=split, data_dir=data_dir, download=True)
            except Exception as second:  # noqa: BLE001
                cause = second
    where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    hint = _OFFLINE_HINTS.get(name.split("/")[0], "a local-file data source")
    raise DatasetUnavailableError(
        f"TFDS dataset {name!r} (split {split!r}) is not prepared in {where}, and "
        f"{'preparing it failed' if download else 'download=False'} "
        f"({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}). "
        "This machine may have no network (TFDS cannot download) or no TensorFlow "
        "(most datasets need it to prepare; reading does not). "
        f"Offline alternatives: {hint}; or copy a prepared array_record copy of {name!r} into "
        "that data_dir (seqjax.data.tfds_source.write_local_dataset writes one from local records)."
    ) from cause


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, bytes -> str (UTF-8); arrays and str pass through."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def to_records(source, fields: Sequence[str] | None = None) -> list[dict]:
    """All examples of a random-access source (e.g. from `load_split`) as Python dicts.

    Grain reads the source (`grain.MapDataset.source`, in order, with its read threads); bytes
    are decoded as UTF-8 and scalars unboxed. `fields` keeps only those features (all of them
    when None); a missing one raises KeyError naming the features the source has.
    """
    import grain

    def plain(example: Mapping[str, Any]) -> dict:
        if fields is not None:
            missing = [f for f in fields if f not in example]
            if missing:
                raise KeyError(f"features {missing} not in the dataset, which has {sorted(example)}")
            example = {f: example[f] for f in fields}
        return {k: _plain(v) for k, v in example.items()}

    return list(grain.MapDataset.source(source).map(plain).to_iter_dataset())


def tiny_shakespeare_text(split: str = "train", data_dir: str | None = None, download: bool = True) -> str:
    """The text of a tiny_shakespeare split (the dataset has one example per split whose
    'text' is the whole split; several examples, as under mock_data, are concatenated)."""
    records = to_records(load_split("tiny_shakespeare", split, data_dir, download), fields=["text"])
    return "".join(r["text"] for r in records)


def write_local_dataset(
    name: str, splits: Mapping[str, Sequence[Mapping[str, Any]]], data_dir: str | os.PathLike
) -> str:
    """Writes records as a prepared TFDS dataset (array_record, one shard per split).

    `splits` maps a split name to its examples, each a dict of the dataset's features (e.g.
    {"text": ..., "label": ...} for imdb_reviews). Uses the dataset's own feature spec for
    serialisation, so `tfds.data_source(name, split=..., data_dir=data_dir)` then reads it
    exactly as it would read a copy prepared by TFDS. Needs no TensorFlow. Returns the
    version directory written.
    """
    from array_record.python import array_record_module

    empty = [split for split, examples in splits.items() if len(examples) == 0]
    if empty:
        raise ValueError(f"every split needs at least one example (TFDS cannot read an empty one): {empty}")

    tfds = _tfds()
    _register(name)
    builder = tfds.builder(name, data_dir=os.fspath(data_dir), file_format="array_record")
    features = builder.info.features
    out_dir = builder.data_path
    out_dir.mkdir(parents=True, exist_ok=True)
    infos = []
    for split, examples in splits.items():
        template = tfds.core.ShardedFileTemplate(
            data_dir=out_dir, dataset_name=builder.name, split=split, filetype_suffix="array_record"
        )
        path = template.sharded_filepath(shard_index=0, num_shards=1)
        writer = array_record_module.ArrayRecordWriter(os.fspath(path), "group_size:1")
        try:
            for ex in examples:
                writer.write(features.serialize_example(dict(ex)))
        finally:
            writer.close()
        infos.append(
            tfds.core.SplitInfo(
                name=split,
                shard_lengths=[len(examples)],
                num_bytes=os.path.getsize(os.fspath(path)),
                filename_template=template,
            )
        )
    builder.info.set_splits(tfds.core.SplitDict(infos))
    builder.info.write_to_directory(out_dir)
    return os.fspath(out_dir)
