"""Command line shared by every experiment: ``python -m experiments.<name> [options]``.

    --workdir DIR               where the run lives; rerunning with the same DIR resumes it
                                (default: a fresh runs/<name>/<YYYYmmdd-HHMMSS>)
    --config FILE_OR_PRESET     a .py file with get_config(), or a preset name resolved as
                                experiments.<name>.configs.<preset> (default: 'default')
    --config.KEY=VALUE          override one field, typed by its current value
    --config.KEY VALUE          (same)

Bad arguments exit with status 2 and a message before the workdir is created or touched; so does a
``ConfigError`` raised by the experiment's ``make_task(config)``, which runs before that too, and a
checkpoint whose ``model`` config differs. A non-finite loss exits with status 1.
"""

from __future__ import annotations

import os
import sys
import time

from seqjax.train import config as config_lib
from seqjax.train.checkpoint import ResumeError
from seqjax.train.loop import NonFiniteLossError, train


class _Args:
    def __init__(self):
        self.workdir: str | None = None
        self.config: str | None = None
        self.overrides: list[tuple[str, str]] = []
        self.help = False


def parse_args(argv: list[str]) -> _Args:
    """Splits argv into workdir, config spec and overrides; raises ConfigError on anything else."""
    args, i = _Args(), 0

    def value_of(flag: str, arg: str) -> tuple[str, int]:
        if "=" in arg:
            return arg.split("=", 1)[1], i + 1
        if i + 1 >= len(argv):
            raise config_lib.ConfigError(f"{flag} needs a value")
        return argv[i + 1], i + 2

    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if arg in ("-h", "--help"):
            args.help, i = True, i + 1
        elif name == "--workdir":
            args.workdir, i = value_of(name, arg)
            if not args.workdir:
                raise config_lib.ConfigError("--workdir needs a non-empty value")
        elif name == "--config":
            if args.config is not None:
                raise config_lib.ConfigError("--config given twice")
            args.config, i = value_of(name, arg)
        elif name.startswith("--config."):
            key = name[len("--config.") :]
            if not key or any(not part for part in key.split(".")):
                raise config_lib.ConfigError(f"{arg}: malformed key")
            text, i = value_of(name, arg)
            args.overrides.append((key, text))
        else:
            raise config_lib.ConfigError(
                f"unexpected argument {arg!r}; "
                "expected --workdir DIR, --config FILE_OR_PRESET, --config.KEY=VALUE"
            )
    return args


def build_config(args: _Args, configs_package: str) -> config_lib.ConfigDict:
    config = config_lib.load_config(args.config, configs_package)
    for key, text in args.overrides:
        config_lib.apply_override(config, key, text)
    config_lib.validate(config)
    return config


def _usage(experiment: str, configs_package: str) -> str:
    presets = config_lib.available_presets(configs_package)
    doc = __doc__.split("\n\n")[0:2]
    return (
        f"usage: python -m experiments.{experiment} [--workdir DIR] [--config FILE_OR_PRESET] "
        f"[--config.KEY=VALUE ...]\n{doc[1]}\npresets: {', '.join(presets) or '(none)'}"
    )


def _fresh_workdir(experiment: str) -> str:
    """``runs/<experiment>/<YYYYmmdd-HHMMSS>``, with a suffix if a run started in the same second."""
    base = os.path.join("runs", experiment, time.strftime("%Y%m%d-%H%M%S"))
    workdir, n = base, 1
    while os.path.exists(workdir):
        n += 1
        workdir = f"{base}-{n}"
    return workdir


def _format_value(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def main(
    experiment: str, make_task, argv: list[str] | None = None, *, configs_package: str | None = None
) -> dict:
    """Parses the command line, trains, prints ``final: key=value ...``; returns the final metrics.

    ``configs_package`` defaults to ``experiments.<experiment>.configs``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    configs_package = configs_package or f"experiments.{experiment}.configs"
    prog = f"experiments.{experiment}"
    try:
        args = parse_args(argv)
        if args.help:
            print(_usage(experiment, configs_package))
            print("\nconfig:\n" + str(build_config(args, configs_package)))
            raise SystemExit(0)
        config = build_config(args, configs_package)
    except config_lib.ConfigError as e:
        print(f"{prog}: error: {e}\n(run with --help for usage)", file=sys.stderr)
        raise SystemExit(2) from None

    workdir = args.workdir or _fresh_workdir(experiment)
    # Build the task (read and check the data) before anything is written: bad input (an empty
    # file, a bad label, an unprepared TFDS dataset, ...) is reported in one line, workdir untouched.
    try:
        task = make_task(config)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        final = train(config, workdir, task)
    except (ResumeError, config_lib.ConfigError) as e:  # make_task may reject the config, too
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except NonFiniteLossError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print("final: " + " ".join(f"{k}={_format_value(v)}" for k, v in final.items()), flush=True)
    print(f"{prog}: results in {os.path.abspath(workdir)}; rerun with --workdir {workdir} to resume "
          "(raise --config.train.steps to train on)", flush=True)
    return final
