"""The command line every experiment shares: ``python -m experiments.<name> [VERB] [options]``.

Training (no verb)::

    --workdir DIR               where the run lives; rerunning with the same DIR resumes it
                                (default: a fresh runs/<name>/<YYYYmmdd-HHMMSS>)
    --config FILE_OR_PRESET     a .py file with get_config(), or a preset name, the module
                                experiments.<name>.configs.<preset> (default: 'default')
    --config.KEY=VALUE          set one field, typed by its current value (--config.KEY VALUE too)

Several processes (``seqjax.train.distributed``; each process runs the same command line)::

    --coordinator HOST:PORT --num_processes N --process_id I    an explicit multi-process launch
    --distributed auto          JAX detects the cluster (Cloud TPU, SLURM, Open MPI, Kubernetes)
                                (or SEQJAX_COORDINATOR, SEQJAX_NUM_PROCESSES, SEQJAX_PROCESS_ID,
                                SEQJAX_DISTRIBUTED=auto in the environment)

An inference verb (``sample``, ``predict``, ``translate``, ``forecast``) takes its own options,
always with ``--workdir DIR`` of a trained run: ``python -m experiments.chargen sample --workdir W``.

``--config`` and its overrides are ``ml_collections.config_flags`` flags (absl), as in flax's
examples and big_vision. This module adds only what ``config_flags`` does not do:

* a preset name is turned into the path of its file (``config_flags`` loads files only);
* an unknown key fails naming the valid keys at its level (``config_flags`` raises an
  ``AttributeError`` with one guess), and so does a whole section given a value;
* every mistake is one line on stderr and exit status 2 (absl's ``app.run`` prints usage and
  exits with 1), before anything is written.

The experiment's data and model are then built from the config, still before the workdir
exists, so bad input (an empty file, a bad label, an unprepared TFDS dataset, a config key that
would be silently ignored, ...) is also one line with exit status 2. So is a ``--workdir`` that
names a file, or that another live run holds, and a checkpoint whose ``model`` config differs.
A non-finite loss, or a write that fails (a full disk), exits 1; SIGTERM and SIGINT save a
checkpoint and exit 143 and 130.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import os
import pkgutil
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager

from absl import flags
from ml_collections import config_flags

from seqjax.train import config as config_lib
from seqjax.train import distributed
from seqjax.train.checkpoint import ResumeError
from seqjax.train.loop import Interrupted, NonFiniteLossError, WorkdirWriteError, train
from seqjax.train.task import Data, Task
from seqjax.train.workdir import WorkdirError, check_path

ConfigError = config_lib.ConfigError
Verb = Callable[[list], object]


def available_presets(configs_package: str) -> list[str]:
    try:
        package = importlib.import_module(configs_package)
    except ImportError:
        return []
    return sorted(m.name for m in pkgutil.iter_modules(getattr(package, "__path__", [])) if not m.ispkg)


def resolve_config(spec: str | None, configs_package: str) -> str:
    """The file of ``--config SPEC``: SPEC itself if it names a file, else the preset's module file.

    A ``:ARG`` suffix (passed by ``config_flags`` to ``get_config(ARG)``) is kept."""
    spec = spec or "default"
    path, sep, arg = spec.partition(":")
    if path.endswith(".py") or os.sep in path or os.path.isfile(path):
        if not os.path.isfile(path):
            raise ConfigError(f"--config {spec}: no such file")
        return spec
    module = f"{configs_package}.{path}"
    try:
        found = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        found = None
    if found is None or not found.origin:
        presets = available_presets(configs_package)
        raise ConfigError(f"--config {spec}: not a file and not a preset ({module} not found); "
                          f"presets: {', '.join(presets) or '(none found)'}")
    return found.origin + sep + arg


def _config_value(argv: list[str]) -> tuple[int, str | None]:
    """Index and value of ``--config`` in argv (the value may be the next argument)."""
    for i, arg in enumerate(argv):
        for flag in ("--config", "-config"):
            if arg == flag:
                if i + 1 >= len(argv):
                    raise ConfigError("--config needs a value: a .py file or a preset name")
                return i, argv[i + 1]
            if arg.startswith(flag + "="):
                return i, arg.split("=", 1)[1]
    return -1, None


def _load(path: str) -> config_lib.ConfigDict:
    """The config that ``config_flags`` will build from ``path``, loaded here to check the overrides."""
    file, _, arg = path.partition(":")
    spec = importlib.util.spec_from_file_location("_seqjax_config_" + os.path.basename(file)[:-3], file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"--config {path}: {file} has no get_config()")
    config = module.get_config(*([arg] if arg else []))
    if not isinstance(config, config_lib.ConfigDict):
        raise ConfigError(f"--config {path}: get_config() returned {type(config).__name__}, not a ConfigDict")
    return config


def _check_override(config: config_lib.ConfigDict, arg: str) -> None:
    """Fails on ``--config.KEY`` naming a key that the config lacks, or a whole section."""
    dotted = arg.split("=", 1)[0].lstrip("-")[len("config."):]
    parts = dotted.split(".")
    if not dotted or not all(parts):
        raise ConfigError(f"{arg}: malformed key")
    node = config
    for depth, part in enumerate(parts):
        where = ".".join(["config", *parts[:depth]])
        if not isinstance(node, config_lib.ConfigDict):
            raise ConfigError(f"--config.{dotted}: {where} is a {type(node).__name__}, not a section")
        if part not in node:
            valid = sorted(node.keys())
            close = difflib.get_close_matches(part, valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"--config.{dotted}: unknown key '{part}' in {where}{hint}; "
                              f"valid keys: {', '.join(valid)}")
        node = node[part]
    if isinstance(node, config_lib.ConfigDict):
        raise ConfigError(f"--config.{dotted} is a section; set one of its keys: {', '.join(sorted(node.keys()))}")


def parse_args(argv: list[str], configs_package: str) -> tuple[config_lib.ConfigDict, str | None]:
    """``(config, workdir or None)`` from the training command line; raises ConfigError."""
    argv = list(argv)
    index, spec = _config_value(argv)
    path = resolve_config(spec, configs_package)
    if index >= 0:  # config_flags sees the resolved file
        argv[index:index + (2 if argv[index] in ("--config", "-config") else 1)] = [f"--config={path}"]
    loaded = _load(path)
    for arg in argv:
        if arg.startswith(("--config.", "-config.")):
            _check_override(loaded, arg)
    values = flags.FlagValues()
    workdir = flags.DEFINE_string("workdir", None, "the run's directory", flag_values=values)
    argv = ["seqjax"] + argv
    config = config_flags.DEFINE_config_file("config", path, "config file or preset", flag_values=values,
                                             sys_argv=argv)
    try:
        rest = values(argv)
    except flags.Error as e:
        message = str(e)
        if isinstance(e, flags.UnrecognizedFlagError):
            message += "; expected --workdir DIR, --config FILE_OR_PRESET, --config.KEY=VALUE"
        raise ConfigError(message) from None
    if rest[1:]:
        raise ConfigError(f"unexpected argument {rest[1]!r}; expected --workdir DIR, --config FILE_OR_PRESET, "
                          "--config.KEY=VALUE (a true/false key takes '=': --config.KEY=false)")
    if workdir.value is not None and not workdir.value:
        raise ConfigError("--workdir needs a non-empty value")
    result = config.value
    config_lib.validate(result)
    return result, workdir.value


def _usage(experiment: str, configs_package: str, verbs: Mapping[str, Verb]) -> str:
    presets = available_presets(configs_package)
    parts = __doc__.split("\n\n")
    doc = parts[2] + "\n\nseveral processes:\n" + parts[4]
    verb = f"\n       python -m experiments.{experiment} {{{','.join(verbs)}}} --workdir DIR ..." if verbs else ""
    return (f"usage: python -m experiments.{experiment} [--workdir DIR] [--config FILE_OR_PRESET] "
            f"[--config.KEY=VALUE ...]{verb}\n{doc}\npresets: {', '.join(presets) or '(none)'}")


def fresh_workdir(experiment: str) -> str:
    """``runs/<experiment>/<YYYYmmdd-HHMMSS>``, with a suffix if a run started in the same second."""
    base = os.path.join("runs", experiment, time.strftime("%Y%m%d-%H%M%S"))
    workdir, n = base, 1
    while os.path.exists(workdir):
        n += 1
        workdir = f"{base}-{n}"
    return workdir


def _format_value(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def verb_parser(experiment: str, verb: str, description: str) -> argparse.ArgumentParser:
    """An inference verb's parser, with the options every verb has: ``--workdir`` and ``--which``."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{experiment} {verb}", description=description)
    parser.add_argument("--workdir", required=True, help="a trained run's workdir (holds checkpoints/)")
    parser.add_argument("--which", choices=("best", "latest"), default="best",
                        help="which checkpoint: the best by the run's train.best_metric (default), or the latest")
    return parser


def run_verb(parser: argparse.ArgumentParser, argv: list[str], body: Callable[[argparse.Namespace], object]):
    """Parses ``argv`` and runs ``body(args)``; a ValueError or OSError is one line and exit status 2."""
    args = parser.parse_args(argv)
    try:
        return body(args)
    except (ValueError, OSError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")


def fail(prog: str, message: str, code: int = 2):
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code) from None


@contextmanager
def one_line_warnings(prog: str):
    """Python warnings as ``PROG: warning: MESSAGE``, one line each (not file, line and source)."""
    previous = warnings.formatwarning

    def format_warning(message, category, filename, lineno, line=None):
        return f"{prog}: warning: {' '.join(str(message).split())}\n"

    warnings.formatwarning = format_warning
    try:
        yield
    finally:
        warnings.formatwarning = previous


def _abandon(prog: str, error: BaseException, where: str) -> None:
    """Ends one process of a multi-process run after an error the others may not share.

    The process exits at once (``os._exit``): JAX's runtime would otherwise hold it at exit
    until every other process arrives, and they may be waiting for this one. Its peers then stop
    too: a collective with it fails, or JAX's heartbeat finds it gone."""
    if isinstance(error, KeyboardInterrupt):
        print(f"{prog}: {where}: interrupted", file=sys.stderr)
        code = 130
    elif distributed.lost_peer(error):
        first = (str(error).strip().splitlines() or [""])[0][:300]
        print(f"{prog}: error: {where}: lost another process of the run ({type(error).__name__}: {first}); "
              "see the other processes' output for why it stopped", file=sys.stderr)
        code = 1
    else:
        traceback.print_exception(error)
        print(f"{prog}: error: {where}: {type(error).__name__}: {error}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(experiment: str, task_class: type[Task], load_data: Callable[[config_lib.ConfigDict], Data],
         argv: list[str] | None = None, *, verbs: Mapping[str, Verb] | None = None,
         configs_package: str | None = None) -> dict | object:
    """Runs a verb, or parses the command line, trains and prints ``final: key=value ...``.

    Returns the final metrics (or the verb's result). ``configs_package`` defaults to
    ``experiments.<experiment>.configs``."""
    with one_line_warnings(f"experiments.{experiment}"):
        return _main(experiment, task_class, load_data, argv, verbs, configs_package)


def _main(experiment, task_class, load_data, argv, verbs, configs_package):
    argv = list(sys.argv[1:] if argv is None else argv)
    verbs = dict(verbs or {})
    if argv and argv[0] in verbs:
        return verbs[argv[0]](argv[1:])
    configs_package = configs_package or f"experiments.{experiment}.configs"
    prog = f"experiments.{experiment}"
    try:
        launch_flags, argv = distributed.pop_flags(argv)
        launch = distributed.resolve(launch_flags)
        if argv and not argv[0].startswith("-"):
            raise ConfigError(f"unknown command {argv[0]!r}; expected options"
                              + (f" or one of {', '.join(verbs)}" if verbs else ""))
        want_help = any(a in ("-h", "--help") for a in argv)
        config, workdir = parse_args([a for a in argv if a not in ("-h", "--help")], configs_package)
    except (ConfigError, distributed.DistributedError) as e:
        fail(prog, str(e))
    if want_help:
        print(_usage(experiment, configs_package, verbs))
        print("\nconfig:\n" + str(config))
        raise SystemExit(0)
    if launch is not None:  # before anything touches a device
        try:
            distributed.initialize(launch)
        except distributed.DistributedError as e:
            fail(prog, str(e))
    multi = launch is not None and distributed.process_count() > 1
    where = f"process {distributed.process_index()} of {distributed.process_count()}" if multi else ""
    if workdir is None:  # a fresh runs/<name>/<time>, named by process 0 for all of them
        workdir = distributed.broadcast(fresh_workdir(experiment) if distributed.is_primary() else None,
                                        "workdir") if multi else fresh_workdir(experiment)
    try:
        check_path(workdir)
    except WorkdirError as e:
        fail(prog, str(e))
    try:
        return _train(prog, config, workdir, task_class, load_data, multi)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        if not multi:
            raise
        _abandon(prog, e, where)


def _train(prog: str, config, workdir: str, task_class, load_data, multi: bool) -> dict:
    # Read and check the data and build the model before anything is written: bad input (an empty
    # file, a bad label, an unprepared TFDS dataset, ...) is reported in one line, workdir untouched.
    error = None
    try:
        data = load_data(config)
        task = task_class(config, data.metadata)
    except (ValueError, OSError, RuntimeError) as e:  # ConfigError is a ValueError
        error = str(e)
    if multi:  # every process stops if one cannot start, all together
        errors = distributed.gather(error or "", "start", timeout_s=distributed.FINAL_WAIT_S)
        error = next((f"process {i}: {e}" if len(set(errors)) > 1 else e for i, e in enumerate(errors) if e), None)
    if error is not None:
        fail(prog, error)
    try:
        final = train(config, workdir, task, data)
    except (ResumeError, ConfigError, WorkdirError) as e:  # WorkdirError: busy, a file, not shared
        fail(prog, str(e))
    except (NonFiniteLossError, WorkdirWriteError) as e:
        fail(prog, str(e), code=1)
    except Interrupted as e:
        fail(prog, f"{e}; rerun with --workdir {workdir} to resume", code=e.exit_code)
    if distributed.is_primary():
        print("final: " + " ".join(f"{k}={_format_value(v)}" for k, v in final.items()), flush=True)
        print(f"{prog}: results in {os.path.abspath(workdir)}; rerun with --workdir {workdir} to resume "
              "(raise --config.train.steps to train on)", flush=True)
    return final
