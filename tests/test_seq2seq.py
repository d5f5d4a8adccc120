"""seq2seq: the number-spelling data, one real step, padding, greedy decoding, a tiny run, bad configs."""

import json
import os
import subprocess
import sys
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.seq2seq import __main__ as cli
from experiments.seq2seq import data as data_lib
from experiments.seq2seq.configs import tiny
from experiments.seq2seq.task import EXAMPLES_FILE, Seq2SeqTask
from seqjax.train import load_from_workdir
from seqjax.train.state import init_state, make_optimizer, make_train_step


def _task(config):
    data = data_lib.load(config)
    return Seq2SeqTask(config, data.metadata), data


@pytest.mark.parametrize("digits,words", [
    ("0", "zero"), ("7", "seven"), ("13", "thirteen"), ("40", "forty"), ("42", "forty two"),
    ("407", "four hundred seven"), ("777", "seven hundred seventy seven"), ("1000000", "one million"),
    ("1000005", "one million five"), ("2030", "two thousand thirty"),
    ("100000000000000000001", "one hundred quintillion one"),
])
def test_spell(digits, words):
    assert " ".join(data_lib.spell(digits)) == words


def test_batches_are_deterministic_and_n_differs_from_m():
    d = data_lib.load(tiny.get_config())
    a, b, c = d.train[3], data_lib.load(tiny.get_config()).train[3], d.train[4]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["src"], c["src"])
    assert a["src"].shape == (32, 3) and a["tgt_in"].shape == (32, data_lib.max_target_len(3)) == (32, 5)
    # teacher forcing: tgt_in is <bos> + tgt_out shifted right; padding is PAD
    np.testing.assert_array_equal(a["tgt_in"][:, 0], data_lib.BOS_ID)
    np.testing.assert_array_equal(a["tgt_in"][:, 1:], np.where(a["tgt_out"][:, :-1] == data_lib.EOS_ID, 0,
                                                               a["tgt_out"][:, :-1]))
    rows = np.arange(32)
    np.testing.assert_array_equal(a["tgt_out"][rows, a["tgt_lengths"] - 1], data_lib.EOS_ID)
    src_len, tgt_len = a["src_lengths"], a["tgt_lengths"] - 1  # words, without <eos>
    assert (src_len > tgt_len).any() and (src_len < tgt_len).any()  # N > M and N < M both occur
    # the validation set is fixed (independent of the training seed) and stratified by length
    reseeded = tiny.get_config()
    reseeded.seed = 99
    other = data_lib.load(reseeded)
    assert not np.array_equal(other.train[3]["src"], a["src"]) and other.val_numbers == d.val_numbers
    assert Counter(len(x) for x in d.val_numbers) == {1: 40, 2: 40, 3: 40}
    assert Counter(a["src_lengths"].tolist()).keys() == {1, 2, 3}


def test_one_real_step_changes_every_parameter():
    config = tiny.get_config()
    task, data = _task(config)
    opt = make_optimizer(config.train)
    state = init_state(task, opt, jax.random.PRNGKey(0), batch_size=config.train.batch_size)
    new, metrics = jax.jit(make_train_step(task, opt))(state, data.train[0], jax.random.PRNGKey(1))
    assert int(new.step) == 1 and float(metrics["loss"][0] / metrics["loss"][1]) > 0
    leaves = jax.tree_util.tree_leaves_with_path(state.params)
    assert any("w_a" in jax.tree_util.keystr(p) for p, _ in leaves)  # attention weights are in the tree
    for (path, a), b in zip(leaves, jax.tree_util.tree_leaves(new.params), strict=True):
        assert not np.allclose(a, b), f"parameter {jax.tree_util.keystr(path)} did not change"


def test_source_padding_does_not_change_the_decoder():
    config = tiny.get_config()
    config.data.max_digits = 6
    task, _ = _task(config)
    params = task.init(jax.random.PRNGKey(0))
    batch = data_lib.encode(["905412", "38", "70001"], 6, data_lib.max_target_len(6))
    logits_fn = jax.jit(task.logits)
    logits = logits_fn(params, batch)
    i = 1  # "38" (N=2, M=2+eos) inside a batch padded to 6 source and 11 target steps
    n, m = int(batch["src_lengths"][i]), int(batch["tgt_lengths"][i])
    alone = data_lib.encode(["38"], n, m)
    assert alone["src"].shape == (1, 2) and alone["tgt_in"].shape == (1, 3)
    logits_alone = logits_fn(params, alone)
    np.testing.assert_allclose(logits[i, :m], logits_alone[0], atol=1e-5)
    assert float(jnp.max(jnp.abs(logits[0, :m] - logits_alone[0]))) > 1e-3  # a different source differs


def test_greedy_decode_equals_stepwise_argmax():
    config = tiny.get_config()
    config.data.max_digits = 4
    task, _ = _task(config)
    params = task.init(jax.random.PRNGKey(3))
    batch = data_lib.encode(["5", "4096", "310"], 4, task.tgt_len)
    ids = task.decode_ids(params, batch)
    T = task.tgt_len
    assert ids.shape == (3, T) == (3, 10)
    # teacher-force the model on its own argmax so far, one step at a time; the decoder is causal, so
    # the logits at step t see only tokens[:, :t+1] and the fixed-width buffer's tail does not matter
    logits_fn = jax.jit(lambda p, tgt_in: task.model(p, batch["src"], batch["src_lengths"], tgt_in))
    tokens = np.zeros((3, T), np.int32)
    tokens[:, 0] = data_lib.BOS_ID
    loop = np.zeros((3, T), np.int32)
    for t in range(T):
        loop[:, t] = np.argmax(np.asarray(logits_fn(params, tokens)[:, t]), -1)
        if t + 1 < T:
            tokens[:, t + 1] = loop[:, t]
    np.testing.assert_array_equal(ids, loop)
    assert len(set(map(tuple, ids.tolist()))) > 1  # the sources lead to different decodes


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("s2s") / "run")
    final = cli.run(["--config", "tiny", "--workdir", wd, "--config.train.eval_every=0"])
    return wd, final


def test_tiny_run_learns(trained, capsys):
    wd, final = trained
    data = data_lib.load(tiny.get_config())
    # chance: always predicting the most frequent target token of the validation set
    batches = [data.val[i] for i in range(len(data.val))]
    counts = Counter(t for b in batches for row, n, w in zip(b["tgt_out"], b["tgt_lengths"], b["weight"], strict=True)
                     if w for t in row[:n].tolist())
    chance = max(counts.values()) / sum(counts.values())
    assert chance < 0.35
    assert final["val_token_accuracy"] > 0.9 and final["greedy_token_accuracy"] > 0.9
    assert final["exact_match"] > 0.8
    saved = json.load(open(os.path.join(wd, "final.json")))
    assert saved["exact_match"] == pytest.approx(final["exact_match"])
    text = open(os.path.join(wd, EXAMPLES_FILE), encoding="utf-8").read()
    assert text.startswith("greedy exact match on 120 validation numbers") and " -> " in text
    # the workdir alone rebuilds the model, which spells numbers it was not shown in this form
    run = load_from_workdir(wd, Seq2SeqTask)
    assert run.metadata["tgt_tokens"][data_lib.EOS_ID] == data_lib.EOS
    numbers = ["7", "19", "20", "305", "999", "610", "88", "4"]
    got = run.task.translate(run.params, numbers)
    assert sum(g == " ".join(data_lib.spell(n)) for g, n in zip(got, numbers, strict=True)) >= 6, got
    capsys.readouterr()
    assert cli.run(["translate", "--workdir", wd, "--which", "latest", *numbers]) == got
    assert capsys.readouterr().out.splitlines()[0] == f"7\t{got[0]}"


@pytest.mark.parametrize("numbers, message", [(["12a"], "expected a string of decimal digits, got '12a'"),
                                              (["1234"], "'1234' has 4 digits; this model was trained on at most 3")])
def test_translate_bad_input(trained, capsys, numbers, message):
    with pytest.raises(SystemExit) as e:
        cli.run(["translate", "--workdir", trained[0], *numbers])
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("override,msg", [
    ("--config.model.context=fixed",
     "config.model.context='fixed': expected one of last, transform, pool, attention"),
    ("--config.model.cell=transformer", "config.model.cell='transformer'"),
    ("--config.data.max_digits=30", "config.data.max_digits=30"),
])
def test_bad_config_exits_2_without_a_workdir(tmp_path, capsys, override, msg):
    wd = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        cli.run(["--config", "tiny", "--workdir", str(wd), override])
    assert e.value.code == 2 and msg in capsys.readouterr().err
    assert not wd.exists()


def test_command_line_bad_context(tmp_path):
    wd = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "experiments.seq2seq", "--config", "tiny", "--workdir", str(wd),
                        "--config.model.context=nope"], capture_output=True, text=True, timeout=120,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 2 and "config.model.context='nope'" in r.stderr, r.stderr[-2000:]
    assert not wd.exists()
