"""The command line (ml_collections.config_flags plus seqjax's shim), config checks, and their errors."""

import os
import textwrap

import pytest
import toy_task

from seqjax.train import ConfigError, main
from seqjax.train import config as config_lib
from seqjax.train.cli import parse_args, resolve_config

TOY_CONFIG = toy_task.__file__


def _parse(*overrides, config=TOY_CONFIG):
    return parse_args(["--config", config, *overrides], "unused.configs")[0]


def _run(argv, **kw):
    return main("toy", toy_task.ToyTask, toy_task.load, argv, **kw)


def test_overrides_are_typed_by_the_value_they_replace():
    config = _parse("--config.train.steps=500", "--config.train.learning_rate=1e-2",
                    "--config.train.clip_norm=1",  # an int string into a float field
                    "--config.train.optimizer", "sgd",  # the two-argument spelling
                    "--config.model.hidden", "3")
    assert config.train.steps == 500 and type(config.train.steps) is int
    assert config.train.learning_rate == 0.01 and type(config.train.learning_rate) is float
    assert config.train.clip_norm == 1.0 and type(config.train.clip_norm) is float
    assert config.train.optimizer == "sgd" and config.model.hidden == 3


def test_tuple_bool_string_and_placeholder_fields(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text(textwrap.dedent("""
        from ml_collections import ConfigDict, config_dict
        from toy_task import get_config as base

        def get_config():
            config = base()
            config.model.update(sizes=(4, 8), flag=False, skip="last", seed=config_dict.placeholder(int))
            return config
    """))
    config = _parse("--config.model.sizes=(16, 32, 64)", "--config.model.flag=true", "--config.model.skip=none",
                    "--config.model.seed=7", config=str(path))
    assert config.model.sizes == (16, 32, 64) and config.model.flag is True
    assert config.model.skip == "none"  # a string field keeps the word 'none'
    assert config.model.seed == 7
    assert _parse(config=str(path)).model.seed is None


@pytest.mark.parametrize("override, message", [
    ("--config.train.steps=abc", "train.steps=abc"),
    ("--config.train.steps=0.5", "train.steps=0.5"),
    ("--config.model.hidden=eight", "model.hidden=eight"),
    ("--config.train.learning_rate=fast", "train.learning_rate=fast"),
])
def test_override_of_the_wrong_type_fails(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        _parse(override)


def test_unknown_key_lists_the_valid_keys_at_its_level():
    with pytest.raises(ConfigError) as info:
        _parse("--config.train.stepz=5")
    message = str(info.value)
    assert "unknown key 'stepz' in config.train" in message and "did you mean 'steps'" in message
    for key in ("batch_size", "learning_rate", "checkpoint_every", "best_metric"):
        assert key in message
    with pytest.raises(ConfigError, match="valid keys: data, eval, model, seed, train"):
        _parse("--config.modle.hidden=5")
    with pytest.raises(ConfigError, match="is a section; set one of its keys: hidden"):
        _parse("--config.model=5")


def test_validate_names_the_bad_field():
    with pytest.raises(ConfigError, match=r"train\.optimizer='adagrad'.*adam, adamw, sgd"):
        _parse("--config.train.optimizer=adagrad")
    with pytest.raises(ConfigError, match=r"config\.eval\.batch_size=0: expected an integer >= 1"):
        _parse("--config.eval.batch_size=0")


def test_a_key_that_would_be_ignored_fails_naming_what_it_needs():
    with pytest.raises(ConfigError, match=r"config\.train\.momentum=0\.5 only takes effect with "
                                          r"train\.optimizer='sgd' \(this config has train\.optimizer='adam'\)"):
        _parse("--config.train.momentum=0.5")
    assert _parse("--config.train.momentum=0.5", "--config.train.optimizer=sgd").train.momentum == 0.5


def test_config_from_file_and_from_preset(tmp_path, monkeypatch):
    package = tmp_path / "toyexp_configs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "default.py").write_text("from toy_task import get_config\n")
    (package / "protocol.py").write_text(textwrap.dedent("""
        from toy_task import get_config as base

        def get_config():
            config = base()
            config.train.steps = 7
            return config
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_config(None, "toyexp_configs") == str(package / "default.py")
    assert parse_args([], "toyexp_configs")[0].train.steps == 40  # 'default'
    config, workdir = parse_args(["--config", "protocol", "--workdir=w"], "toyexp_configs")
    assert config.train.steps == 7 and workdir == "w"
    with pytest.raises(ConfigError, match="presets: default, protocol"):
        parse_args(["--config=protocl"], "toyexp_configs")
    with pytest.raises(ConfigError, match="no such file"):
        parse_args(["--config", str(tmp_path / "missing.py")], "toyexp_configs")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="has no get_config"):
        parse_args(["--config", str(tmp_path / "empty.py")], "toyexp_configs")


def test_resume_mismatch_lists_each_differing_field():
    old = {"model": {"hidden": 8, "cell": "lstm", "layers": [1, 2]}, "train": {"steps": 5}}
    new = {"model": {"hidden": 16, "cell": "lstm", "layers": (1, 2), "extra": 1}, "train": {"steps": 9}}
    assert config_lib.resume_mismatch(old, new) == ["model.extra: (absent) -> 1", "model.hidden: 8 -> 16"]


@pytest.mark.parametrize("argv, expected", [
    (["--config.train.nope=1"], "unknown key 'nope' in config.train"),
    (["--config.train.steps=many"], "train.steps=many"),
    (["--config.train.optimizer=adagrad"], "adam, adamw, sgd"),
    (["--bogus"], "Unknown command line flag 'bogus'"),
    (["--config.train.steps"], "--config.train.steps"),
    (["--config.model.hidden", "4", "stray"], "unexpected argument 'stray'"),
    (["--workdir="], "--workdir needs a non-empty value"),
])
def test_bad_cli_input_exits_before_touching_the_workdir(tmp_path, capsys, argv, expected):
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        _run(["--workdir", str(workdir), "--config", TOY_CONFIG] + argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert not workdir.exists()


def test_config_error_from_the_data_exits_before_touching_the_workdir(tmp_path, capsys):
    def load(config):
        raise ConfigError("data.path: no such file")

    with pytest.raises(SystemExit) as info:
        main("toy", toy_task.ToyTask, load, ["--workdir", str(tmp_path / "run"), "--config", TOY_CONFIG])
    assert info.value.code == 2
    assert capsys.readouterr().err == "experiments.toy: error: data.path: no such file\n"
    assert not (tmp_path / "run").exists()


def test_bad_preset_exits_before_the_default_workdir_is_made(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        _run(["--config", "nosuchpreset"], configs_package="no_such_package.configs")
    assert info.value.code == 2
    assert "not a file and not a preset" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_verbs_are_dispatched_and_unknown_words_refused(capsys):
    seen = []
    assert main("toy", toy_task.ToyTask, toy_task.load, ["sample", "--x", "1"],
                verbs={"sample": lambda argv: seen.append(argv) or "done"}) == "done"
    assert seen == [["--x", "1"]]
    with pytest.raises(SystemExit) as info:
        main("toy", toy_task.ToyTask, toy_task.load, ["smaple"], verbs={"sample": print})
    assert info.value.code == 2 and "unknown command 'smaple'; expected options or one of sample" in (
        capsys.readouterr().err)


def test_help_prints_the_config(capsys):
    with pytest.raises(SystemExit) as info:
        _run(["--config", TOY_CONFIG, "--config.train.steps=3", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "steps: 3" in out


def test_launch_sh_finds_the_experiments_and_points_old_verbs_to_new_ones():
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run(["bash", os.path.join(root, "launch.sh"), "sample", "--workdir", "w"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert "./launch.sh chargen sample --workdir DIR" in run.stderr
    assert "chargen memory sentiment seq2seq timeseries" in run.stderr
