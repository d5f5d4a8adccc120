"""Sentiment data: sources, validation of bad input, vocabulary from train only, batching."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments.sentiment.configs import default
from experiments.sentiment.data import MARKERS, generate_marker_reviews, load, read_splits
from seqjax.data import tfds_source
from seqjax.data.text import OOV_ID, PAD_ID
from seqjax.train import ConfigError


def _config(seed=0, **data):
    config = default.get_config()
    config.seed = seed
    config.data.update(data)
    return config


def load_sentiment(data: dict, seed: int = 0):
    """The splits of the default config with ``data`` overriding its data section."""
    return read_splits(_config(seed, **data))


def _gen_cfg(**kw):
    cfg = dict(
        source="generated",
        gen_train_size=60,
        gen_test_size=20,
        gen_min_len=5,
        gen_max_len=30,
        gen_num_fillers=10,
        vocab_size=50,
        max_len=40,
        val_fraction=0.25,
    )
    cfg.update(kw)
    return cfg


def _write_acl(root, reviews):
    """reviews: {"train/pos": [text, ...], ...}; writes one .txt per review."""
    for sub, texts in reviews.items():
        os.makedirs(root / sub, exist_ok=True)
        for i, text in enumerate(texts):
            (root / sub / f"{i}_7.txt").write_text(text, encoding="utf-8")


ACL = {
    "train/pos": ["A wonderful film.<br /><br />Loved it", "wonderful acting, wonderful story"],
    "train/neg": ["A dull film", "dull and boring", "boring boring plot"],
    "test/pos": ["wonderful zanzibar"],
    "test/neg": ["boring film"],
}


# ---------------------------------------------------------------- generated source


def test_generated_marker_anywhere_and_lengths_vary():
    texts, labels = generate_marker_reviews(200, 5, 40, num_fillers=8, seed=3)
    words = [t.split() for t in texts]
    assert all(sum(w in MARKERS for w in ws) == 1 for ws in words)
    assert all(MARKERS[y] in ws for ws, y in zip(words, labels, strict=True))
    positions = np.array([[w in MARKERS for w in ws].index(True) / len(ws) for ws in words])
    assert positions.min() < 0.1 and positions.max() > 0.9  # first steps and last steps both occur
    lengths = [len(ws) for ws in words]
    assert min(lengths) >= 5 and max(lengths) <= 40 and len(set(lengths)) > 10
    assert 60 < labels.sum() < 140
    assert generate_marker_reviews(200, 5, 40, 8, seed=3)[0] == texts


def test_load_generated_shapes_and_labels_follow_marker():
    data = load_sentiment(_gen_cfg(), seed=0)
    assert data.vocab == load_sentiment(_gen_cfg(), seed=0).vocab
    assert (len(data.train), len(data.val), len(data.test)) == (45, 15, 20)
    for split in ("train", "val", "test"):
        s = getattr(data, split)
        assert s.tokens.shape == (len(s), 40) and s.tokens.dtype == np.int32
        assert s.lengths.dtype == np.int32 and s.labels.dtype == np.int32
        assert s.lengths.min() >= 1
        for row, n, y in zip(s.tokens, s.lengths, s.labels, strict=True):
            assert (row[n:] == PAD_ID).all() and (row[:n] != PAD_ID).all()
            assert data.vocab.id_of(MARKERS[y]) in row[:n]
            assert data.vocab.id_of(MARKERS[1 - y]) not in row[:n]


# ---------------------------------------------------------------- local sources


def test_imdb_dir_layout_and_vocab_from_train_only(tmp_path):
    _write_acl(tmp_path, ACL)
    data = load_sentiment(
        dict(source="imdb_dir", path=str(tmp_path), vocab_size=100, max_len=5, val_fraction=0.0), seed=0
    )
    assert (len(data.train), len(data.val), len(data.test)) == (5, 0, 2)
    assert sorted(data.train.labels.tolist()) == [0, 0, 0, 1, 1]
    assert "br" not in data.vocab and "wonderful" in data.vocab
    assert "zanzibar" not in data.vocab  # seen only in test
    pos_test = data.test.tokens[data.test.labels == 1][0]
    assert pos_test[:2].tolist() == [data.vocab.id_of("wonderful"), OOV_ID]
    # "a wonderful film . loved it" (6 tokens) and the 5-token review are cut to max_len=5.
    assert sorted(data.train.lengths.tolist()) == [3, 3, 3, 5, 5]
    assert OOV_ID not in data.train.tokens  # every training word fits in the vocabulary


def test_val_words_are_oov_and_split_is_seeded(tmp_path):
    rows = [{"text": f"common word{i}", "label": i % 2} for i in range(20)]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    cfg = dict(
        source="jsonl", path=str(path), vocab_size=100, max_len=5, val_fraction=0.25, test_fraction=0.0
    )
    data = load_sentiment(cfg, seed=1)
    assert (len(data.train), len(data.val)) == (15, 5)
    assert data.vocab.size == 2 + 1 + 15  # PAD, OOV, "common", one word per training row
    assert (data.val.tokens[:, 1] == OOV_ID).all() and (data.train.tokens[:, 1] != OOV_ID).all()
    again, other = load_sentiment(cfg, seed=1), load_sentiment(cfg, seed=2)
    assert (again.val.tokens == data.val.tokens).all()
    assert set(other.vocab.words) != set(data.vocab.words)  # another seed holds out other rows


def test_csv_and_jsonl_with_custom_columns(tmp_path):
    csv_path = tmp_path / "r.csv"
    csv_path.write_text(
        'review,polarity,extra\n"Great, truly ""great"" film",1,x\n"multi\nline dud",0,y\nfine,1,z\n',
        encoding="utf-8",
    )
    test_csv = tmp_path / "t.csv"
    test_csv.write_text("polarity,review\n1,great film\n0,dud\n", encoding="utf-8")
    jsonl_path = tmp_path / "r.jsonl"
    jsonl_path.write_text(
        '{"review": "great film", "polarity": 1}\n\n{"review": "dud", "polarity": 0}\n', encoding="utf-8"
    )
    common = dict(text_column="review", label_column="polarity", vocab_size=20, max_len=10, val_fraction=0.0)
    from_csv = load_sentiment(dict(common, source="csv", path=str(csv_path), test_path=str(test_csv)), 0)
    assert len(from_csv.train) == 3 and len(from_csv.test) == 2
    assert sorted(from_csv.train.lengths.tolist()) == [
        1,
        3,
        7,
    ]  # fine | multi line dud | great , truly "great" film (7)
    assert from_csv.test.labels.tolist() == [1, 0]
    from_jsonl = load_sentiment(dict(common, source="jsonl", path=str(jsonl_path), test_fraction=0.5), 0)
    assert len(from_jsonl.train) == 1 and len(from_jsonl.test) == 1


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("text,label\nfine,1\n<br />,0\n", r"row 2 \(line 3\) of .*bad\.csv: review text is empty"),
        ("text,label\nfine,1\nok,2\n", r"row 2 .*label must be 0 or 1, got '2'"),
        ("text,label\nfine,1\nok,-1\n", r"row 2 .*label must be 0 or 1, got '-1'"),
        ("text,label\nfine,1\nshort\n", r"row 2 .*label must be 0 or 1, got None"),
        ("review,y\nfine,1\n", r"no column 'text', 'label'; its columns are \['review', 'y'\]"),
        ("text,label\n", r"the file has a header but no data rows"),
    ],
)
def test_bad_csv(tmp_path, content, pattern):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=pattern):
        load_sentiment(dict(source="csv", path=str(path), test_fraction=0.0), seed=0)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


@pytest.mark.parametrize(
    "line, pattern",
    [
        ('{"text": 5, "label": 1}', r"\(line 2\) of .*: review text must be a string, got int 5"),
        ('{"text": null, "label": 1}', r"\(line 2\) .*must be a string, got NoneType"),
        ('{"text": "ok", "label": 1.5}', r"\(line 2\) .*label must be 0 or 1, got 1\.5"),
        ('{"text": "ok", "label": true}', r"\(line 2\) .*label must be 0 or 1, got True"),
        (
            '{"body": "ok", "label": 1}',
            r"line 2 .*has no field\(s\) \['text'\]; its fields are \['body', 'label'\]",
        ),
        ('{"text": "ok", ', r"line 2 of .* is not valid JSON"),
    ],
)
def test_bad_jsonl(tmp_path, line, pattern):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine", "label": 0}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=pattern):
        load_sentiment(dict(source="jsonl", path=str(path), test_fraction=0.0), seed=0)


def test_bad_imdb_dir(tmp_path):
    partial = {k: v for k, v in ACL.items() if k != "test/neg"}
    _write_acl(tmp_path, partial)
    with pytest.raises(ValueError, match=r"is missing test/neg \(expected train/pos, train/neg, test/pos"):
        load_sentiment(dict(source="imdb_dir", path=str(tmp_path)), seed=0)
    _write_acl(tmp_path, {"test/neg": ["<br /><br />"]})
    with pytest.raises(ValueError, match=r"file .*test/neg/0_7\.txt: review text is empty"):
        load_sentiment(dict(source="imdb_dir", path=str(tmp_path)), seed=0)
    (tmp_path / "test/neg/0_7.txt").write_bytes(b"caf\xe9")
    with pytest.raises(ValueError, match=r"0_7\.txt is not valid UTF-8: byte 0xe9 at byte offset 3"):
        load_sentiment(dict(source="imdb_dir", path=str(tmp_path)), seed=0)


@pytest.mark.parametrize(
    "override, pattern",
    [
        (dict(max_len=0), r"config\.data\.max_len=0: expected an integer >= 1"),
        (dict(max_len=-5), r"config\.data\.max_len=-5: expected an integer >= 1"),
        (dict(vocab_size=1), r"config\.data\.vocab_size=1: expected an integer >= 2 \(the reserved PAD=0 and OOV=1"),
        (dict(vocab_size=13), r"config\.data\.vocab_size=13: must be >= 14 for generated data"),
        (dict(gen_max_len=50), r"config\.data\.gen_max_len=50: must be <= data\.max_len \(40\)"),
        (dict(val_fraction=1.0), r"config\.data\.val_fraction=1\.0: expected a number in \[0, 1\)"),
        (dict(source="imdb"), r"config\.data\.source='imdb': expected one of"),
    ],
)
def test_bad_config(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_sentiment(_gen_cfg(**override), seed=0)


@pytest.mark.parametrize(
    "override, pattern",
    [
        (dict(source="csv", path="r.csv", gen_seed=3),
         r"config\.data\.gen_seed=3 only takes effect with data\.source='generated' \(this config has "
         r"data\.source='csv'\)"),
        (dict(path="r.csv"), r"config\.data\.path='r\.csv' only takes effect with data\.source='imdb_dir', 'csv'"),
        (dict(text_column="body"), r"data\.text_column='body' only takes effect with data\.source='csv' or 'jsonl'"),
        (dict(source="csv", path="r.csv", test_path="t.csv", test_fraction=0.3),
         r"config\.data\.test_fraction=0\.3 only takes effect with no data\.test_path"),
        (dict(tfds_download=False), r"config\.data\.tfds_download=False only takes effect with a TFDS data\.source"),
        (dict(source="csv"), r"data\.source='csv' needs --config\.data\.path=PATH"),
    ],
)
def test_keys_the_source_would_ignore_fail(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        read_splits(_config(**override))


# ---------------------------------------------------------------- batching


def _train_batches(seed, **data):
    config = _config(seed, **_gen_cfg(**data))
    config.train.batch_size = 8
    loaded = load(config)
    return loaded.splits, loaded.train


def test_train_batches_are_deterministic_and_cover_each_epoch():
    splits, train = _train_batches(7, val_fraction=0.0, gen_train_size=50)
    n, b = len(splits.train), 8
    first = train[3]
    assert set(first) == {"tokens", "lengths", "labels", "weight"} and first["tokens"].shape == (b, 40)
    again = _train_batches(7, val_fraction=0.0, gen_train_size=50)[1][3]
    assert all((first[k] == again[k]).all() for k in first)
    assert not (train[4]["tokens"] == first["tokens"]).all()
    assert not (_train_batches(8, val_fraction=0.0, gen_train_size=50)[1][3]["tokens"] == first["tokens"]).all()

    # Rows are identified by their token row; generated rows are distinct (random fillers).
    row_id = {r.tobytes(): i for i, r in enumerate(splits.train.tokens)}
    assert len(row_id) == n
    seen = [row_id[r.tobytes()] for step in range(-(-2 * n // b)) for r in train[step]["tokens"]]
    assert sorted(seen[:n]) == list(range(n))  # epoch 0 spans batches, across a boundary
    assert sorted(seen[n : 2 * n]) == list(range(n))
    assert seen[:n] != seen[n : 2 * n]  # a fresh order each epoch


def test_eval_batches_cover_split_with_weights():
    config = _config(**_gen_cfg())
    config.eval.batch_size = 8
    data = load(config)
    batches = [data.test[i] for i in range(len(data.test))]
    assert [b["tokens"].shape for b in batches] == [(8, 40)] * 3
    weights = np.concatenate([b["weight"] for b in batches])
    assert weights.tolist() == [1.0] * 20 + [0.0] * 4
    labels = np.concatenate([b["labels"] for b in batches])[:20]
    assert (labels == data.splits.test.labels).all()
    last = data.splits.test.tokens[-1]
    assert all((row == last).all() for row in batches[-1]["tokens"][4:])  # fillers repeat the last review
    assert len(data.val) == 2 and data.val[1]["weight"].tolist() == [1.0] * 7 + [0.0]


# ---------------------------------------------------------------- TFDS sources


def test_imdb_reviews_through_tfds_mock_data():
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        data = load_sentiment(
            dict(source="imdb_reviews", vocab_size=30, max_len=6, val_fraction=0.25), seed=0
        )
    assert (len(data.train), len(data.val), len(data.test)) == (9, 3, 12)
    assert set(data.train.labels.tolist()) <= {0, 1} and data.train.lengths.min() >= 1
    assert data.vocab.size > 2


def test_sst2_uses_validation_as_test(tmp_path):
    """Real array_record files (no mock): labels -1 in sst2's test split must not be read."""
    tfds_source.write_local_dataset(
        "glue/sst2",
        {
            "train": [
                {"sentence": "a gem", "label": 1, "idx": 0},
                {"sentence": "a dud", "label": 0, "idx": 1},
            ],
            "validation": [{"sentence": "gem", "label": 1, "idx": 0}],
            "test": [{"sentence": "unknown", "label": -1, "idx": 0}],
        },
        tmp_path,
    )
    data = load_sentiment(
        dict(
            source="glue/sst2",
            tfds_data_dir=str(tmp_path),
            tfds_download=False,
            vocab_size=10,
            max_len=4,
            val_fraction=0.0,
        ),
        seed=0,
    )
    assert len(data.train) == 2 and data.test.labels.tolist() == [1]
    assert data.test.tokens[0, 0] == data.vocab.id_of("gem")


def test_tfds_label_outside_binary_is_named(tmp_path):
    tfds_source.write_local_dataset(
        "glue/sst2",
        {
            "train": [{"sentence": "x", "label": -1, "idx": 0}],
            "validation": [{"sentence": "y", "label": 0, "idx": 0}],
        },
        tmp_path,
    )
    with pytest.raises(ValueError, match=r"glue/sst2 train example 0: label must be 0 or 1, got -1"):
        load_sentiment(dict(source="glue/sst2", tfds_data_dir=str(tmp_path), tfds_download=False), seed=0)
