"""Config loading, command-line overrides and the CLI's argument errors (no training here)."""

import os
import textwrap

import pytest
import toy_task

from seqjax.train import ConfigError, apply_override, load_config, main
from seqjax.train import config as config_lib
from seqjax.train.cli import parse_args

TOY_CONFIG = toy_task.__file__


def test_overrides_are_typed_by_the_value_they_replace():
    config = toy_task.get_config()
    config.model.layers = (4, 8)
    config.model.note = None
    apply_override(config, "train.steps", "500")
    apply_override(config, "train.learning_rate", "1e-2")
    apply_override(config, "train.clip_norm", "1")  # an int string into a float field
    apply_override(config, "train.optimizer", "sgd")
    apply_override(config, "model.layers", "16,32,64")
    apply_override(config, "model.note", "(1, 2)")  # a None field takes a Python literal
    apply_override(config, "train.eval_every", "1e3")
    assert config.train.steps == 500 and type(config.train.steps) is int
    assert config.train.learning_rate == 0.01 and type(config.train.learning_rate) is float
    assert config.train.clip_norm == 1.0 and type(config.train.clip_norm) is float
    assert config.train.optimizer == "sgd"
    assert config.model.layers == (16, 32, 64)
    assert config.model.note == (1, 2)
    assert config.train.eval_every == 1000
    config.model.flag = False
    apply_override(config, "model.flag", "true")
    assert config.model.flag is True
    config.model.skip = "last"
    apply_override(config, "model.skip", "none")  # a string field keeps the word 'none'
    assert config.model.skip == "none"
    apply_override(config, "model.note", "none")  # a None-able field reads it as None
    assert config.model.note is None


@pytest.mark.parametrize(
    "key, text",
    [
        ("train.steps", "abc"),
        ("train.steps", "0.5"),
        ("model.hidden", "eight"),
        ("train.learning_rate", "fast"),
    ],
)
def test_override_of_the_wrong_type_fails(key, text):
    config = toy_task.get_config()
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        apply_override(config, key, text)


def test_unknown_key_lists_the_valid_keys_at_its_level():
    config = toy_task.get_config()
    with pytest.raises(ConfigError) as info:
        apply_override(config, "train.stepz", "5")
    message = str(info.value)
    assert "unknown key 'stepz' in config.train" in message
    assert "did you mean 'steps'" in message
    for key in ("batch_size", "learning_rate", "checkpoint_every", "best_metric"):
        assert key in message
    with pytest.raises(ConfigError, match="valid keys: data, model, seed, train"):
        apply_override(config, "modle.hidden", "5")
    with pytest.raises(ConfigError, match="is a section"):
        apply_override(config, "model", "5")


def test_validate_names_the_bad_field():
    config = toy_task.get_config()
    config.train.optimizer = "adagrad"
    with pytest.raises(ConfigError, match=r"train\.optimizer='adagrad'.*adam, adamw, sgd"):
        config_lib.validate(config)


def test_config_from_file_and_from_preset(tmp_path, monkeypatch):
    config = load_config(TOY_CONFIG, "unused")
    assert config.model.hidden == 8 and config.train.steps == 40

    package = tmp_path / "toyexp_configs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "default.py").write_text("from toy_task import get_config\n")
    (package / "protocol.py").write_text(
        textwrap.dedent("""
        from toy_task import get_config as base

        def get_config():
            config = base()
            config.train.steps = 7
            return config
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_config(None, "toyexp_configs").train.steps == 40  # 'default'
    assert load_config("protocol", "toyexp_configs").train.steps == 7
    with pytest.raises(ConfigError, match="presets: default, protocol"):
        load_config("protocl", "toyexp_configs")
    with pytest.raises(ConfigError, match="no such file"):
        load_config(str(tmp_path / "missing.py"), "toyexp_configs")


def test_parse_args_accepts_both_override_spellings():
    args = parse_args(
        ["--workdir=w", "--config", "f.py", "--config.train.steps=5", "--config.model.hidden", "3"]
    )
    assert (args.workdir, args.config) == ("w", "f.py")
    assert args.overrides == [("train.steps", "5"), ("model.hidden", "3")]


def test_resume_mismatch_lists_each_differing_field():
    old = {"model": {"hidden": 8, "cell": "lstm", "layers": [1, 2]}, "train": {"steps": 5}}
    new = {"model": {"hidden": 16, "cell": "lstm", "layers": (1, 2), "extra": 1}, "train": {"steps": 9}}
    assert config_lib.resume_mismatch(old, new) == ["model.extra: (absent) -> 1", "model.hidden: 8 -> 16"]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--config.train.nope=1"], "unknown key 'nope' in config.train"),
        (["--config.train.steps=many"], "train.steps=many"),
        (["--config.train.optimizer=adagrad"], "adam, adamw, sgd"),
        (["--bogus"], "unexpected argument '--bogus'"),
        (["--config.train.steps"], "needs a value"),
    ],
)
def test_bad_cli_input_exits_before_touching_the_workdir(tmp_path, capsys, argv, expected):
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main("toy", toy_task.make_task, ["--workdir", str(workdir), "--config", TOY_CONFIG] + argv)
    assert info.value.code == 2
    assert expected in capsys.readouterr().err
    assert not workdir.exists()


def test_config_error_from_make_task_exits_before_touching_the_workdir(tmp_path, capsys):
    def make_task(config):
        raise ConfigError("data.path: no such file")

    with pytest.raises(SystemExit) as info:
        main("toy", make_task, ["--workdir", str(tmp_path / "run"), "--config", TOY_CONFIG])
    assert info.value.code == 2
    assert "data.path: no such file" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_bad_preset_exits_before_the_default_workdir_is_made(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(
            "toy", toy_task.make_task, ["--config", "nosuchpreset"], configs_package="no_such_package.configs"
        )
    assert info.value.code == 2
    assert "not a file and not a preset" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_help_prints_the_config(capsys):
    with pytest.raises(SystemExit) as info:
        main("toy", toy_task.make_task, ["--config", TOY_CONFIG, "--config.train.steps=3", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "steps: 3" in out
