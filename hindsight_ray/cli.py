"""The ``hindsight-ray`` command line: argument parsing only; the work is done elsewhere."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hindsight_ray import __version__
from hindsight_ray.core.errors import UserError
from hindsight_ray.running.lock_and_signals import Interrupted


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hindsight-ray",
        description="Two-stage hyperparameter sweeps of Keras LSTMs on Ray Tune.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and Ray's own logs")
    commands = parser.add_subparsers(dest="command", required=True)
    # --debug is accepted after the subcommand too; SUPPRESS keeps the top-level value when it is absent
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )

    # what a sweep's config is made of: the same for `sweep` and `config`
    made_of = argparse.ArgumentParser(add_help=False)
    made_of.add_argument("config", nargs="?", help="YAML config file; every key has a default")
    made_of.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set search.stage1.units=[8,16] (value parsed as YAML)",
    )
    made_of.add_argument("--name", help="experiment name (folder under storage)")
    made_of.add_argument(
        "--storage", help="where experiments go: a local path, shared NFS path or s3:// URI"
    )
    made_of.add_argument("--address", help="Ray cluster to use: auto, or ray://host:10001")

    sweep = commands.add_parser(
        "sweep",
        parents=[debug, made_of],
        help="run a sweep (the embedded default when no CONFIG is given)",
    )
    sweep.add_argument(
        "--dry-run", action="store_true", help="validate and print the plan without training"
    )
    sweep.add_argument(
        "--no-report", action="store_true", help="skip report.md and its plots at the end"
    )
    commands.add_parser(
        "config",
        parents=[debug, made_of],
        help="print the effective config, each value with where it came from (nothing runs)",
    )

    resume = commands.add_parser(
        "resume", parents=[debug], help="continue an interrupted sweep from its experiment dir"
    )
    resume.add_argument("experiment", metavar="EXPERIMENT_DIR")
    resume.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="must agree with the config the sweep started with; a change is refused",
    )

    report = commands.add_parser(
        "report", parents=[debug], help="(re)write report.md and its plots for a finished sweep"
    )
    report.add_argument("experiment", metavar="EXPERIMENT_DIR")

    campaign = commands.add_parser(
        "campaign", parents=[debug], help="run a benchmark campaign: strategies x datasets x seeds"
    )
    campaign.add_argument("campaign", metavar="CAMPAIGN.yaml")
    campaign.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a campaign key, e.g. --set seeds=[0]",
    )
    campaign.add_argument(
        "--dry-run", action="store_true", help="validate and list the sweeps without running"
    )

    commands.add_parser("datasets", parents=[debug], help="list the bundled datasets")

    predict = commands.add_parser(
        "predict",
        parents=[debug],
        help="run a finished sweep's best model on raw data (CSV or Parquet)",
    )
    predict.add_argument("experiment", metavar="EXPERIMENT_DIR")
    predict.add_argument(
        "--data", required=True, metavar="FILE", help="raw rows: a series, or a text column"
    )
    predict.add_argument(
        "--out", metavar="FILE", help="where to write (.csv or .parquet); default: CSV on stdout"
    )
    predict.add_argument(
        "--backend",
        choices=["tensorflow", "jax", "torch"],
        help="Keras backend to load on (default: the sweep's)",
    )
    return parser


def _sweep(args: argparse.Namespace) -> int:
    from hindsight_ray import api

    config = api.resolve_config(args.config, args.overrides, _literal(args))
    if args.dry_run:
        api.plan(config)
        return 0
    result = api.sweep(config, report=not args.no_report)
    if result.best is None:
        raise UserError(
            "every stage-1 trial failed; see the trials' error.txt files in the experiment dir"
        )
    return 0


def _literal(args: argparse.Namespace) -> dict[str, str | None]:
    """The options taken literally, never as YAML: --name "run #3" is that name, --name 2024-11-24 too."""
    return {"name": args.name, "storage": args.storage, "resources.address": args.address}


def _config(args: argparse.Namespace) -> int:
    from hindsight_ray import api

    for line in api.explain_config(args.config, args.overrides, _literal(args)):
        print(line)
    return 0


def _resume(args: argparse.Namespace) -> int:
    from hindsight_ray import api

    # overrides must agree with the recorded config
    api.resume(args.experiment, overrides=args.overrides)
    return 0


def _report(args: argparse.Namespace) -> int:
    from hindsight_ray import api

    try:
        written = api.report(args.experiment)
    except UserError as exc:
        if args.debug and exc.__cause__ is not None:
            raise exc.__cause__ from None
        raise
    print(f"report: {written}")
    return 0


def _campaign(args: argparse.Namespace) -> int:
    from hindsight_ray import api

    campaign = api.load_campaign(args.campaign, args.overrides)
    if args.dry_run:
        print(campaign.describe())
        return 0
    api.run_campaign(campaign)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from hindsight_ray import api

    predicted = api.predict_file(args.experiment, args.data, args.out, args.backend)
    if args.out is None:
        predicted.to_csv(sys.stdout, index=False)
    else:
        print(f"predictions: {len(predicted)} rows in {args.out}", file=sys.stderr)
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from hindsight_ray import api

    for line in api.datasets():
        print(line)
    return 0


def quiet_native_stderr() -> None:
    """Send what C++ libraries write straight to file descriptor 2 (TensorFlow's and absl's "All log
    messages before absl::InitializeLog()" and "Could not find cuda drivers" lines, Ray's core) to
    /dev/null, while Python's ``sys.stderr`` (our ``error:`` lines, warnings, tracebacks) keeps the
    real stderr. For the command only, never for a Python session that calls :func:`main`."""
    sys.stderr.flush()
    kept = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(
        kept, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8", errors="backslashreplace"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        if argv is None:
            # the command itself (tests and notebooks pass argv and keep their stderr)
            quiet_native_stderr()
    if argv is None:
        from hindsight_ray.running import cluster
        from hindsight_ray.running.lock_and_signals import stop_on_sigterm
        from hindsight_ray.training import backend

        stop_on_sigterm()
        # nothing but the command imports here: Keras without JAX (see backend.use)
        backend.OWN_PROCESS = True
        # the command ends at once, in one line, if its local Ray dies
        cluster.EXIT_WHEN_RAY_DIES = True
    handlers = {
        "sweep": _sweep,
        "config": _config,
        "resume": _resume,
        "report": _report,
        "campaign": _campaign,
        "datasets": _datasets,
        "predict": _predict,
    }
    try:
        return handlers[args.command](args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        from hindsight_ray.running.lock_and_signals import stop_message

        message, code = stop_message(exc)
        print(f"error: {message}", file=sys.stderr)
        return code
