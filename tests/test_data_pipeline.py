"""seqjax.data.pipeline (Grain batches, padding, process shares) and seqjax.data.table (CSV, JSONL)."""

import numpy as np
import pytest

from seqjax.data import ArraySource, eval_batches, pipeline, read_csv, read_jsonl, train_batches, whole_batches


def _ids(batch):
    return batch["i"].tolist()


def test_train_batches_are_shuffled_epochs_and_pure_in_seed_and_step():
    source = ArraySource(i=np.arange(10))
    train = train_batches(source, 4, seed=3)
    again = train_batches(source, 4, seed=3)
    stream = [i for s in range(5) for i in _ids(train[s])]  # 20 positions: two epochs of 10
    assert sorted(stream[:10]) == sorted(stream[10:]) == list(range(10)) and stream[:10] != stream[10:]
    assert _ids(train[2]) == stream[8:12]  # batch 2 straddles the epoch boundary: nothing dropped
    assert [_ids(again[s]) for s in (4, 0, 2)] == [_ids(train[s]) for s in (4, 0, 2)]  # any order, any object
    assert train[0]["weight"].dtype == np.float32 and train[0]["weight"].tolist() == [1.0] * 4
    other = train_batches(source, 4, seed=4)
    assert [_ids(other[s]) for s in range(3)] != [_ids(train[s]) for s in range(3)]
    in_order = train_batches(source, 4, seed=3, shuffle=False)
    assert [_ids(in_order[s]) for s in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]
    with pytest.raises(ValueError, match="no training examples"):
        train_batches([], 4, seed=0)


def test_neighbouring_seeds_do_not_share_epochs():
    """Grain seeds epoch e with seed + e; the run seed is mixed first, so seed 1 is not seed 0 shifted."""
    source = ArraySource(i=np.arange(50))
    zero, one = train_batches(source, 50, seed=0), train_batches(source, 50, seed=1)
    assert _ids(zero[1]) != _ids(one[0]) and _ids(zero[2]) != _ids(one[1])


def test_eval_batches_pad_with_the_last_example_at_weight_zero():
    val = eval_batches(ArraySource(i=np.arange(7), x=np.arange(7.0)[:, None]), 3)
    assert len(val) == 3
    assert [_ids(val[k]) for k in range(3)] == [[0, 1, 2], [3, 4, 5], [6, 6, 6]]
    assert [val[k]["weight"].tolist() for k in range(3)] == [[1, 1, 1], [1, 1, 1], [1, 0, 0]]
    assert val[2]["x"].shape == (3, 1)
    assert len(eval_batches(ArraySource(i=np.arange(6)), 3)) == 2  # no filler when the size divides
    assert len(eval_batches([], 3)) == 0


def test_each_process_reads_its_rows_of_every_global_batch(monkeypatch):
    source = ArraySource(i=np.arange(13))
    one = train_batches(source, 6, seed=5)
    val_one = eval_batches(source, 6)
    monkeypatch.setattr(pipeline.jax, "process_count", lambda: 2)
    shares, val_shares = [], []
    for p in (0, 1):
        monkeypatch.setattr(pipeline.jax, "process_index", lambda p=p: p)
        shares.append(train_batches(source, 6, seed=5))
        val_shares.append(eval_batches(source, 6))
    for s in range(5):  # the local batches, in process order, are the one-process batch
        assert _ids(shares[0][s]) + _ids(shares[1][s]) == _ids(one[s])
    for k in range(3):
        joined = np.concatenate([val_shares[0][k]["weight"], val_shares[1][k]["weight"]])
        assert _ids(val_shares[0][k]) + _ids(val_shares[1][k]) == _ids(val_one[k])
        np.testing.assert_array_equal(joined, val_one[k]["weight"])
    with pytest.raises(ValueError, match=r"train\.batch_size=5 is not divisible by the 2 JAX processes"):
        train_batches(source, 5, seed=0)
    with pytest.raises(ValueError, match=r"eval\.batch_size=7 is not divisible by the 2 JAX processes"):
        eval_batches(source, 7)


def test_whole_batches_gives_every_process_the_whole_evaluation_batch(monkeypatch):
    source = ArraySource(i=np.arange(7))
    whole = [_ids(b) for b in eval_batches(source, 4)]  # one process: [[0..3], [4, 5, 6, 6]]
    monkeypatch.setattr(pipeline.jax, "process_count", lambda: 2)
    monkeypatch.setattr(pipeline.jax, "process_index", lambda: 1)
    val = eval_batches(source, 4)
    assert [_ids(val[k]) for k in range(len(val))] == [[2, 3], [6, 6]]  # process 1's share
    with whole_batches():
        assert [_ids(val[k]) for k in range(len(val))] == whole
        assert val[1]["weight"].tolist() == [1, 1, 1, 0]
    assert _ids(val[0]) == [2, 3]  # the share again after the block
    train = train_batches(source, 4, seed=0)
    with whole_batches():  # training batches stay the process's share
        assert len(_ids(train[0])) == 2


def test_array_source_checks_lengths():
    with pytest.raises(ValueError, match="arrays of one length"):
        ArraySource(a=np.zeros(3), b=np.zeros(4))
    assert ArraySource(a=np.arange(3), b=np.ones((3, 2)))[1]["b"].tolist() == [1.0, 1.0]


# ----------------------------------------------------------------------------- tables


def test_csv_rows_lines_short_rows_and_bom(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes('\ufeffname, value\n"multi\nline",1\n\nshort\nlast,2\n'.encode())
    table = read_csv(str(path))
    assert table.columns == ["name", "value"] and len(table) == 3
    assert table.column("name") == ["multi\nline", "short", "last"]
    assert table.column("value") == ["1", None, "2"]  # a short row has no cell
    assert table.where(1) == f"row 2 (line 5) of {path}"
    with pytest.raises(ValueError, match=r"missing/NaN values at data rows 2"):
        table.floats("value")
    with pytest.raises(ValueError, match=r"no column 'x'; its columns are \['name', 'value'\]"):
        table.require(["value", "x"])


def test_csv_numbers_and_text_errors(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("y\n1.5\n-inf\n2e3\nabc\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"non-numeric values at data rows 2, 4: row 2 \(line 3\): '-inf'; "
                                         r"row 4 \(line 5\): 'abc'"):
        read_csv(str(path)).floats("y")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"y\ncaf\xe9\n")
    with pytest.raises(ValueError, match=r"not valid UTF-8: byte 0xe9 at byte offset 5"):
        read_csv(str(bad))


def test_jsonl_records(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"t": "a", "y": 1}\n\n{"t": "b", "y": 0, "extra": 2}\n', encoding="utf-8")
    table = read_jsonl(str(path), ["t", "y"])
    assert table.column("t") == ["a", "b"] and table.where(1) == f"row 2 (line 3) of {path}"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no records"):
        read_jsonl(str(path), ["t"])
