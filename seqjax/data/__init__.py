"""Data for seqjax experiments, all as numpy arrays and without TensorFlow.

* `seqjax.data.text`: CharVocab, WordVocab, tokenize, read_text_file, pad_batch.
* `seqjax.data.tfds_source`: TFDS splits through `tfds.data_source` (array_record, no TF),
  with a clear error and offline alternatives when a dataset is not prepared.
* `seqjax.data.series`: time-series windows.

TensorFlow Datasets itself is imported only when a TFDS source is used.
"""

from seqjax.data.text import (
    OOV_ID,
    PAD_ID,
    CharVocab,
    WordVocab,
    pad_batch,
    read_text_file,
    tokenize,
)
from seqjax.data.tfds_source import (
    DatasetUnavailableError,
    load_split,
    tiny_shakespeare_text,
    to_records,
    write_local_dataset,
)

__all__ = [
    "CharVocab",
    "DatasetUnavailableError",
    "OOV_ID",
    "PAD_ID",
    "WordVocab",
    "load_split",
    "pad_batch",
    "read_text_file",
    "tiny_shakespeare_text",
    "to_records",
    "tokenize",
    "write_local_dataset",
]
