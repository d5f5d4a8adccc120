"""The data layer shared by the experiments: numpy arrays, Grain pipelines, no TensorFlow.

* `seqjax.data.pipeline`: Grain `MapDataset` pipelines. `train_batches` (step `s`'s batch is a
  pure function of seed and `s`), `eval_batches` (padded, one `weight` per example), and each
  JAX process's share of every global batch.
* `seqjax.data.table`: CSV and JSON-lines files, with the row and line of every value.
* `seqjax.data.text`: CharVocab, WordVocab, tokenize, read_text_file, pad_batch.
* `seqjax.data.series`: chronological splits, the train-span scaler, forecast windows.
* `seqjax.data.tfds_source`: TFDS splits through `tfds.data_source` (array_record, no TF),
  with a clear error and offline alternatives when a dataset is not prepared.

TensorFlow Datasets itself is imported only when a TFDS source is used.
"""

from seqjax.data.pipeline import WEIGHT, ArraySource, eval_batches, local_share, train_batches, whole_batches
from seqjax.data.table import Table, read_csv, read_jsonl
from seqjax.data.text import OOV_ID, PAD_ID, CharVocab, WordVocab, pad_batch, read_text_file, tokenize
from seqjax.data.tfds_source import (
    DatasetUnavailableError,
    load_split,
    tiny_shakespeare_text,
    to_records,
    write_local_dataset,
)

__all__ = [
    "ArraySource",
    "CharVocab",
    "DatasetUnavailableError",
    "OOV_ID",
    "PAD_ID",
    "Table",
    "WEIGHT",
    "WordVocab",
    "eval_batches",
    "load_split",
    "local_share",
    "pad_batch",
    "read_csv",
    "read_jsonl",
    "read_text_file",
    "tiny_shakespeare_text",
    "to_records",
    "tokenize",
    "train_batches",
    "whole_batches",
    "write_local_dataset",
]
