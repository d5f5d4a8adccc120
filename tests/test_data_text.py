"""Vocabularies, the file reader, pad_batch and the TF-free TFDS reader."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from seqjax.data import tfds_source
from seqjax.data.text import OOV_ID, PAD_ID, CharVocab, WordVocab, pad_batch, read_text_file, tokenize

SHARED_TEXT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "shakespeare.txt")


# ---------------------------------------------------------------- CharVocab


def test_char_vocab_ids_are_sorted_positions_and_round_trip():
    vocab = CharVocab.from_text("hello, wörld")
    assert vocab.chars == tuple(sorted(set("hello, wörld")))
    assert vocab.size == 10  # h e l o , space w ö r d
    ids = vocab.encode("wörld, hello")
    assert ids.dtype == np.int32
    assert ids.tolist() == [vocab.chars.index(c) for c in "wörld, hello"]
    assert vocab.decode(ids) == "wörld, hello"
    assert vocab.decode([]) == ""


def test_char_vocab_unknown_characters_are_named():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match=r"'xz'.*2 distinct"):
        vocab.encode("abxzx")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        vocab.decode([0, 3])


def test_char_vocab_json_round_trip():
    vocab = CharVocab.from_text('a"b\n\\é')
    text = vocab.to_json()
    back = CharVocab.from_json(text)
    assert back == vocab and back.chars == tuple(sorted('a"b\n\\é'))
    assert CharVocab.from_json(json.loads(text)) == vocab
    with pytest.raises(ValueError, match="kind='char'"):
        CharVocab.from_json(WordVocab(["x"]).to_json())


def test_char_vocab_on_shared_shakespeare():
    if not os.path.exists(SHARED_TEXT):
        pytest.skip("shakespeare.txt (not shipped with the repository) is not present beside the checkout")
    text = read_text_file(SHARED_TEXT, min_chars=1000)
    vocab = CharVocab.from_text(text)
    assert vocab.size == 85  # as stated in shared/data/README.md
    sample = text[1_000_000:1_100_000]
    assert vocab.decode(vocab.encode(sample)) == sample


# ---------------------------------------------------------------- tokenizer and WordVocab


def test_tokenize_strips_html_breaks_and_splits_punctuation():
    text = "A GREAT film!<br /><br />I didn't like<br>the end...<BR/>ok"
    assert tokenize(text) == [
        "a",
        "great",
        "film",
        "!",
        "i",
        "didn't",
        "like",
        "the",
        "end",
        ".",
        ".",
        ".",
        "ok",
    ]
    assert "br" not in tokenize("x<br />y")
    assert tokenize("   ") == []


def test_word_vocab_top_k_with_alphabetical_tie_break():
    texts = ["b a c", "c a b", "d a", "e"]  # a:3, b:2, c:2, d:1, e:1
    vocab = WordVocab.build(texts, max_size=5)
    assert vocab.words == ("a", "b", "c")
    assert vocab.size == 5
    # Order of the input does not matter.
    assert WordVocab.build(list(reversed(texts)), max_size=5) == vocab
    assert WordVocab.build(texts, max_size=100, min_count=2).words == ("a", "b", "c")
    assert WordVocab.build(texts, max_size=100).words == ("a", "b", "c", "d", "e")


def test_word_vocab_encode_maps_oov_and_truncates():
    vocab = WordVocab.build(["the film was good", "the film"], max_size=10)
    ids = vocab.encode("The film was TERRIBLE indeed", max_len=4)
    assert ids.dtype == np.int32
    assert ids.tolist() == [vocab.id_of("the"), vocab.id_of("film"), vocab.id_of("was"), OOV_ID]
    assert PAD_ID not in ids.tolist() and vocab.id_of("terrible") == OOV_ID
    assert vocab.decode(ids) == "the film was <oov>"
    assert vocab.encode(["film", "zzz"], max_len=9).tolist() == [vocab.id_of("film"), OOV_ID]


def test_word_vocab_bad_sizes():
    with pytest.raises(ValueError, match=r"at least 2.*PAD=0 and OOV=1.*got 1"):
        WordVocab.build(["a b"], max_size=1)
    assert WordVocab.build(["a b"], max_size=2).size == 2  # only the reserved ids
    vocab = WordVocab.build(["a b"], max_size=4)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="max_len must be a positive integer"):
            vocab.encode("a", max_len=bad)


def test_word_vocab_json_round_trip():
    vocab = WordVocab.build(['it\'s a "quoted" <br /> thing', "a b"], max_size=50)
    back = WordVocab.from_json(vocab.to_json())
    assert back == vocab
    assert back.encode("a thing zz", 5).tolist() == vocab.encode("a thing zz", 5).tolist()


# ---------------------------------------------------------------- read_text_file, pad_batch


def test_read_text_file_reports_bad_utf8_with_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf" + "é au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt is not valid UTF-8: byte 0xe9 at byte offset 3"):
        read_text_file(path)


def test_read_text_file_too_short_and_empty(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcde", encoding="utf-8")
    with pytest.raises(ValueError, match=r"short\.txt has only 5 characters; at least 100 "):
        read_text_file(path, min_chars=100)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.txt is empty; at least 1 "):
        read_text_file(empty)
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfhi\r\nthere")
    assert read_text_file(bom) == "hi\r\nthere"


def test_pad_batch():
    tokens, lengths = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert tokens.dtype == np.int32 and lengths.dtype == np.int32
    assert tokens.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0]
    tokens, lengths = pad_batch([np.array([1, 2, 3, 4]), [9]], pad_id=-1, max_len=2)
    assert tokens.tolist() == [[1, 2], [9, -1]] and lengths.tolist() == [2, 1]
    assert pad_batch([[]])[0].shape == (1, 1)
    with pytest.raises(ValueError):
        pad_batch([])
    with pytest.raises(ValueError):
        pad_batch([[1]], max_len=0)


# ---------------------------------------------------------------- TFDS without TensorFlow


def test_real_array_record_path_reads_bytes_as_text(tmp_path):
    """No mock: write a prepared array_record copy, read it back through tfds.data_source."""
    tfds_source.write_local_dataset(
        "imdb_reviews",
        {
            "train": [{"text": "Loved it<br />!", "label": 1}, {"text": "naïve plot", "label": 0}],
            "test": [{"text": "meh", "label": 0}],
        },
        tmp_path,
    )
    source = tfds_source.load_split("imdb_reviews", "train", data_dir=str(tmp_path), download=False)
    assert len(source) == 2
    assert isinstance(source[1]["text"], bytes)  # what real files give; to_records decodes it
    assert tfds_source.to_records(source) == [
        {"text": "Loved it<br />!", "label": 1},
        {"text": "naïve plot", "label": 0},
    ]
    tfds_source.write_local_dataset("tiny_shakespeare", {"test": [{"text": "To be, or not"}]}, tmp_path)
    assert (
        tfds_source.tiny_shakespeare_text("test", data_dir=str(tmp_path), download=False) == "To be, or not"
    )
    with pytest.raises(ValueError, match=r"at least one example.*\['validation'\]"):
        tfds_source.write_local_dataset("imdb_reviews", {"validation": []}, tmp_path / "other")
    with pytest.raises(ValueError, match="Unknown split"):  # prepared data: real errors pass through
        tfds_source.load_split("imdb_reviews", "nope", data_dir=str(tmp_path), download=False)


def test_unprepared_dataset_gives_offline_alternatives(tmp_path):
    with pytest.raises(tfds_source.DatasetUnavailableError) as info:
        tfds_source.load_split("imdb_reviews", "train", data_dir=str(tmp_path), download=False)
    msg = str(info.value)
    assert "'imdb_reviews'" in msg and "not prepared" in msg and str(tmp_path) in msg
    assert "--config.data.source=imdb_dir" in msg
    with pytest.raises(tfds_source.DatasetUnavailableError, match=r"--config\.data\.text_file"):
        tfds_source.tiny_shakespeare_text("train", data_dir=str(tmp_path), download=False)


def test_mock_data_imdb_reviews_and_sst2():
    # USE_CODE builds the features from the dataset's code; no metadata files, no TensorFlow.
    with tfds.testing.mock_data(num_examples=7, policy=tfds.testing.MockPolicy.USE_CODE):
        records = tfds_source.to_records(tfds_source.load_split("imdb_reviews", "train"))
        sst2 = tfds_source.to_records(
            tfds_source.load_split("glue/sst2", "validation"), ["sentence", "label"]
        )
    assert len(records) == 7 and len(sst2) == 7
    assert all(isinstance(r["text"], str) and r["text"] for r in records)
    assert {r["label"] for r in records} <= {0, 1}
    assert all(isinstance(r["sentence"], str) and r["label"] in (0, 1) for r in sst2)


def test_mock_data_tiny_shakespeare():
    with tfds.testing.mock_data(num_examples=1, policy=tfds.testing.MockPolicy.USE_CODE):
        text = tfds_source.tiny_shakespeare_text("train")
    assert isinstance(text, str) and len(text) >= 10
    assert CharVocab.from_text(text).decode(CharVocab.from_text(text).encode(text)) == text


def test_word_vocab_keeps_head_or_tail():
    from seqjax.data.text import WordVocab

    v = WordVocab.build(["a b c d e"], max_size=10)
    head, tail = v.encode("a b c d e", 2), v.encode("a b c d e", 2, keep="tail")
    assert v.decode(head) == "a b" and v.decode(tail) == "d e"
    import pytest

    with pytest.raises(ValueError, match="keep must be 'head' or 'tail'"):
        v.encode("a b", 2, keep="middle")
