"""The ``sweep`` command.

Example:
    $ sweep validate jobs/mlp.yaml
    $ sweep run jobs/mlp.yaml
    $ sweep top mlp-digits -k 5
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .core.errors import SpecError, SweepError

EXIT_OK, EXIT_ALL_FAILED, EXIT_BAD_INPUT, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143

MAIN_HELP = """\
Parallel hyperparameter sweeps on Ray: the right priors, grid / random /
quasi-random plans, coarse-to-fine stages, one Parquet results table.

examples:
  sweep validate jobs/mlp.yaml          check a sweep file and summarise it
  sweep plan jobs/mlp.yaml --limit 5    dry run: the first trials as JSON lines
  sweep run jobs/mlp.yaml               run it on a local Ray (ray.init())
  sweep run jobs/mlp.yaml --address auto          ... on the Ray cluster of this machine
  sweep submit jobs/mlp.yaml --address http://127.0.0.1:8265 --follow
  sweep status mlp-digits               trials by stage and status
  sweep top mlp-digits -k 10            the best trials
  sweep report mlp-digits -o report.html
  sweep importance mlp-digits           which parameters matter
  sweep dashboard                       watch every sweep under ./results in a browser

PATH (status, top, report, importance) is a sweep's results folder (results/mlp-digits),
a URI (s3://bucket/prefix/mlp-digits), or a sweep name under ./results (its free text
too: "First Sweep").
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sweep`` command."""
    parser = argparse.ArgumentParser(prog="sweep", description=MAIN_HELP,
                                     formatter_class=_formatter)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_validate_parser, _plan_parser, _run_parser, _status_parser, _top_parser,
                _report_parser, _importance_parser, _dashboard_parser, _submit_parser):
        add(sub)
    return parser


def _command(sub: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=description,
                          formatter_class=_formatter)


def _validate_parser(sub: Any) -> None:
    p = _command(sub, "validate", "check a sweep file and summarise it",
                 "Check a sweep file: parameters with their priors and bounds, stages with "
                 "their trial counts, the results folder its name gives. Exit 0 when valid, "
                 "2 with the error otherwise.\n\nexample:\n  sweep validate jobs/mlp.yaml")
    p.add_argument("spec", help="the sweep file (YAML)")


def _plan_parser(sub: Any) -> None:
    p = _command(sub, "plan", "dry run: a stage's trials as JSON lines",
                 "Print a stage's trials as JSON lines "
                 '{"stage":..,"trial_id":..,"params":{..}} without running anything. '
                 "A refine or bayes stage is told the stored results of the stages before "
                 "it (--results).\n\nexample:\n  sweep plan jobs/mlp.yaml --stage 0 --limit 3")
    p.add_argument("spec", help="the sweep file (YAML)")
    p.add_argument("--stage", type=int, default=0, help="stage number (default 0)")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="print at most N trials")
    p.add_argument("--results", default="results",
                   help="results root for refine stages (default ./results)")


def _run_parser(sub: Any) -> None:
    p = _command(sub, "run", "run a sweep on Ray",
                 "Run every stage of a sweep on Ray and write each trial to "
                 "<results>/<folder>/trials as Parquet. Rerunning the same command resumes: "
                 "stored trials are not run again.\n\nexit status: 0 finished (even with some "
                 "failed trials), 1 every trial failed, 2 bad input, 130 interrupted "
                 "(Ctrl-C), 143 terminated.\n\nexamples:\n  sweep run jobs/mlp.yaml\n"
                 "  sweep run jobs/mlp.yaml --results s3://bucket/sweeps --address auto\n"
                 "  sweep run jobs/mlp.yaml --fresh      # start over; old results are "
                 "moved aside\n  sweep run wandb_sweep.yaml --objective train:main   # W&B "
                 "function agents")
    p.add_argument("spec", help="the sweep file (YAML)")
    _add_results(p)
    p.add_argument("--address", default=None,
                   help="Ray address: auto, ray://HEAD:10001, HOST:6379 (default: RAY_ADDRESS, "
                   "else a new local Ray)")
    p.add_argument("--fresh", action="store_true",
                   help="move earlier results of this sweep aside and start over")
    p.add_argument("--retry-failed", action="store_true",
                   help="also rerun stored trials that failed or timed out (a bayes or refine "
                        "stage spends their budget on new proposals instead)")
    p.add_argument("--max-concurrent", type=_positive_int, default=None, metavar="N",
                   help="at most N Ray tasks in flight (default: enough to fill the cluster)")
    p.add_argument("-k", "--top", type=_positive_int, default=5, metavar="K",
                   help="rows of the final top-k table (default 5)")
    p.add_argument("--objective", default=None, metavar="MODULE:FUNCTION",
                   help="the function to run, for a sweep file without objective, program "
                   "or command (W&B function agents), e.g. jobs.mlp:train")
    p.add_argument("--dry-run", action="store_true",
                   help="validate and show the stages and first trials; run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--verbose", action="store_true",
                   help="show Ray's logs and the objective's output")


def _status_parser(sub: Any) -> None:
    p = _command(sub, "status", "trials by stage and status, best so far",
                 "Trials by stage and status (ok, failed, timeout, stopped), the best so far, "
                 "and whether a driver is running.\n\nexample:\n  sweep status mlp-digits")
    p.add_argument("path", help="results folder, URI, or sweep folder under ./results")


def _top_parser(sub: Any) -> None:
    p = _command(sub, "top", "the best trials",
                 "The best trials by the sweep's metric (ok trials with a finite metric; ties "
                 "by trial id; a sweep without a metric lists its trials in the order they "
                 "finished).\n\nexamples:\n  sweep top mlp-digits -k 10\n"
                 "  sweep top results/mlp-digits --stage 1 --format csv > best.csv")
    p.add_argument("path", help="results folder, URI, or sweep folder under ./results")
    p.add_argument("-k", type=_positive_int, default=10, help="how many (default 10)")
    p.add_argument("--stage", type=int, default=None, help="only this stage")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")


def _report_parser(sub: Any) -> None:
    p = _command(sub, "report", "a self-contained HTML report with plots",
                 "Write one HTML file that works offline: best trial per stage, the metric "
                 "against each parameter (log axes for log parameters, stages coloured, "
                 "refine boxes drawn), learning curves, and a parallel-coordinates view. "
                 "Needs plotly: pip install 'sweep[report]'.\n\nexample:\n"
                 "  sweep report mlp-digits -o report.html")
    p.add_argument("path", help="results folder, URI, or sweep folder under ./results")
    p.add_argument("-o", "--output", default=None,
                   help="output file (default <folder>-report.html)")


def _importance_parser(sub: Any) -> None:
    p = _command(sub, "importance", "which parameters matter (fANOVA)",
                 "How much of the metric's variance each parameter explains: alone, and "
                 "with others (interactions), as fANOVA on a random forest (log parameters "
                 "in decades, categorical ones as sets of categories), with the spread over "
                 "bootstrap resamples and the forest's out-of-bag R². Reads the ranked "
                 "trials stored so far (a running sweep too).\n\nexamples:\n"
                 "  sweep importance mlp-digits\n"
                 "  sweep importance results/mlp-digits --stage 0 --format json")
    p.add_argument("path", help="results folder, URI, or sweep folder under ./results")
    p.add_argument("--stage", type=int, action="append", default=None, metavar="S",
                   help="only the trials of stage S (repeat for several; default all)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--resamples", type=_positive_int, default=8, metavar="N",
                   help="bootstrap resamples, each with its own forest (default 8)")
    p.add_argument("--trees", type=_positive_int, default=16, metavar="N",
                   help="trees per forest (default 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _dashboard_parser(sub: Any) -> None:
    p = _command(sub, "dashboard", "watch sweeps live in a browser",
                 "Serve a live page of every sweep under the results roots: progress per "
                 "stage, the best so far over time, the trials (sortable; each with its own "
                 "page: curve, error, lineage), learning curves, the metric against each "
                 "parameter, parallel coordinates and parameter importance. It updates while "
                 "drivers write, without a reload, and never writes into the results.\n\n"
                 "It listens on 127.0.0.1 (this machine only) unless --host says otherwise; "
                 "anywhere else it requires a token (printed in the address), since whoever "
                 "reaches it can read every sweep's parameters, metrics and error texts.\n\n"
                 "examples:\n  sweep dashboard                         # ./results\n"
                 "  sweep dashboard mlp-digits              # that sweep's page\n"
                 "  sweep dashboard s3://bucket/sweeps results --port 8091\n"
                 "  ssh -L 8090:127.0.0.1:8090 head-node   # then open http://127.0.0.1:8090")
    p.add_argument("paths", nargs="*", metavar="ROOT|PATH",
                   help="results roots (folders or URIs) or a sweep's folder (default "
                        "./results)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every "
                        "interface, with a token)")
    p.add_argument("--port", type=int, default=8090, help="port (default 8090; 0: any)")
    p.add_argument("--token", default=None,
                   help="the token to require (default: none on 127.0.0.1, a new random one "
                        "elsewhere)")
    p.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                   help="how often a watched sweep's folder is looked at (default 1)")
    p.add_argument("--nice", type=int, default=10, metavar="N",
                   help="lower this process's priority by N, so that drivers and trials on "
                        "the same machine go first (default 10; 0 to keep it)")


def _submit_parser(sub: Any) -> None:
    p = _command(sub, "submit", "submit a sweep to a Ray cluster as a Ray Job",
                 "Submit `sweep run SPEC` to a Ray cluster as a Ray Job (Ray's job "
                 "submission API): the working directory travels with it. Prints the "
                 "submission id; --follow streams the logs and exits with the job's status."
                 "\n\nexample:\n  ray dashboard deploy/cluster/aws.yaml   # forwards the "
                 "head's 8265 to localhost\n  sweep submit jobs/mlp.yaml --address "
                 "http://127.0.0.1:8265 --results s3://bucket/sweeps --follow")
    p.add_argument("spec", help="the sweep file, inside the working directory")
    p.add_argument("--address", required=True,
                   help="the cluster's job API, e.g. http://127.0.0.1:8265")
    _add_results(p)
    p.add_argument("--follow", action="store_true", help="stream the job's logs until it ends")
    p.add_argument("--working-dir", default=".",
                   help="folder uploaded with the job (default: the current folder)")
    p.add_argument("--submission-id", default=None, help="a submission id of your choosing")


def _add_results(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", metavar="DIR|URI",
                   help="results root: a folder or a URI such as s3://bucket/prefix "
                   "(default ./results)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _version() -> str:
    from . import __version__

    return f"sweep {__version__}"


def _warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
    print(f"sweep: warning: {message}", file=sys.stderr)


# ------------------------------------------------------------------ commands


def _load(path: str) -> Any:
    from .spec.sweep_file import load_spec

    return load_spec(path)


def _stage_line(spec: Any, stage: Any) -> str:
    if stage.plan == "grid":
        detail = f"{_planned(spec, stage)} trials (grid)"
    elif stage.plan == "refine":
        budget = f"{stage.trials} trials" if stage.trials else "full grids"
        source = "the previous stage" if stage.source == "previous" else "all stages"
        detail = (f"{budget} around the top {stage.refine_top_k} of {source} "
                  f"(region {stage.region}, sample {stage.sample})")
    elif stage.plan == "bayes":
        detail = f"{stage.trials} trials, model-based (seed {stage.seed})"
    elif stage.plan == "pbt":
        cap = f", at most {stage.trials} trials" if stage.trials else ""
        detail = (f"population {stage.population}, exploit every {stage.interval} steps "
                  f"(quantile {stage.quantile:g}{cap}; seed {stage.seed})")
    else:
        detail = f"{stage.trials} trials (seed {stage.seed})"
    fixed = f"; fixed {stage.fixed}" if stage.fixed else ""
    return f"  {stage.index}: {stage.plan:<7} {detail}{fixed}"


def cmd_validate(args: argparse.Namespace) -> int:
    spec = _load(args.spec)
    if spec.command is not None:
        target = " ".join(spec.command)
    elif spec.objective is not None:
        target = spec.objective if isinstance(spec.objective, str) else "a Python callable"
    else:
        target = "nothing yet (give --objective module:function to sweep run)"
    goal = f"{spec.metric.goal} {spec.metric.name}" if spec.metric else "no metric (nothing ranked)"
    print(f"sweep {spec.name!r}: {goal}; runs {target}")
    if spec.folder != spec.name:
        print(f"results folder: {spec.folder}")
    print("parameters:")
    width = max(len(n) for n in spec.space)
    for name, dist in spec.space.items():
        print(f"  {name:<{width}}  {dist.describe()}")
    print("stages:")
    for stage in spec.stages:
        print(_stage_line(spec, stage))
    rule = spec.stopping_rule()
    if rule is not None:
        print(f"early termination: {rule.describe()}")
    res = spec.resources
    print(f"resources per trial: {res.num_cpus:g} CPU, {res.num_gpus:g} GPU"
          + (f", {res.memory} bytes" if res.memory else "")
          + (f", {res.custom}" if res.custom else ""))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from .worker.trial_ids import canonical_json, trial_id

    spec = _load(args.spec)
    if not 0 <= args.stage < len(spec.stages):
        raise SpecError("--stage", args.stage, f"a stage number in 0..{len(spec.stages) - 1}")
    stage = spec.stages[args.stage]
    plan = _plan_of(spec, stage, args.results)
    for candidate in itertools.islice(plan.candidates(), args.limit):
        record: dict[str, Any] = {"stage": stage.index,
                                  "trial_id": trial_id(spec.name, stage.index,
                                                       candidate.params, candidate.key),
                                  "params": candidate.params}
        if stage.plan == "refine":
            record["parent_id"] = candidate.parent
        print(canonical_json(record))
    return EXIT_OK


def _plan_of(spec: Any, stage: Any, results: str) -> Any:
    """A stage's plan, told what is stored (a refine stage needs the stages before it)."""
    from .engine.planning import prepare_plan
    from .engine.runner import open_reader

    def history() -> list[Any]:
        reader = open_reader(spec, results)
        if stage.plan == "refine" and not reader.folder.exists():
            raise SweepError(f"stage {stage.index} refines stored results, and "
                             f"{reader.folder.dir} holds none: run the earlier stages first "
                             f"(sweep run)")
        return reader.records(range(stage.index + 1))

    return prepare_plan(spec, stage, history)


def cmd_run(args: argparse.Namespace) -> int:
    from .engine.progress import Progress
    from .engine.runner import Terminated, execute
    from .store.folder import TRIALS
    from .views.tables import store_stage_lines, top_table

    spec = _load(args.spec)
    if args.objective is not None:
        spec = spec.with_objective(args.objective)
    if args.dry_run:
        return _dry_run(spec, args)
    metric = spec.metric.name if spec.metric else ""
    progress = Progress(quiet=args.quiet, metric=metric)
    try:
        outcome = execute(spec, results=args.results, address=args.address, fresh=args.fresh,
                          retry_failed=args.retry_failed, max_concurrent=args.max_concurrent,
                          progress=progress, verbose=args.verbose, read_table=False)
    except KeyboardInterrupt:
        print("\nsweep: interrupted; finished trials are stored. Rerun the same command to "
              "resume.", file=sys.stderr)
        return EXIT_SIGINT
    except Terminated:
        print("sweep: terminated; finished trials are stored. Rerun the same command to "
              "resume.", file=sys.stderr)
        return EXIT_SIGTERM
    reader, metric = outcome.reader, spec.metric
    counts = reader.counts()
    top = reader.best(metric, args.top)
    print()
    print(top_table(top, metric, k=args.top, title=True, total=int(counts["n"].sum())))
    print()
    for line in store_stage_lines(reader, metric, counts):
        print(line)
    trials = reader.folder.location(TRIALS)
    print()
    print(f"results: {trials}")
    print(f"  pandas.read_parquet({trials!r})")
    finished = set(counts["status"])
    if finished and not finished & {"ok", "stopped"}:
        errors = reader.read(columns=["error"])["error"].dropna()
        print("sweep: every trial failed; see the error column (sweep top shows none). "
              "First error:\n" + str(errors.iloc[0] if len(errors) else "")[:2000],
              file=sys.stderr)
        return EXIT_ALL_FAILED
    return EXIT_OK


def _dry_run(spec: Any, args: argparse.Namespace) -> int:
    cmd_validate(args)
    for stage in spec.stages:
        if stage.plan == "refine":
            print(f"stage {stage.index}: refine; its trials come from stage "
                  f"{stage.index - 1}'s results")
            continue
        print(f"stage {stage.index}: first trials")
        plan = _plan_of(spec, stage, args.results)
        for candidate in itertools.islice(plan.candidates(), 3):
            print(f"  {json.dumps(candidate.params)}")
    return EXIT_OK


def resolve_path(path: str) -> tuple[str, str]:
    """(results root, folder) of a sweep's results folder, URI or name."""
    if "://" in path:
        parts = urlsplit(path)
        head, _, name = parts.path.rstrip("/").rpartition("/")
        if not name:
            raise SweepError(f"{path!r} names no sweep: expected <root URI>/<sweep folder>")
        # Options such as ?endpoint_override=... belong to the root.
        return urlunsplit((parts.scheme, parts.netloc, head, parts.query, parts.fragment)), name
    from .spec.wandb_names import folder_name

    candidates = [path, os.path.join("results", path)]
    # A sweep's free-text name ("First Sweep") names the folder its safe form does.
    for given in list(candidates):
        parent, name = os.path.split(given.rstrip("/" + os.sep))
        if name and folder_name(name) != name:
            candidates.append(os.path.join(parent, folder_name(name)))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "spec.yaml")):
            full = os.path.abspath(candidate)
            return os.path.dirname(full), os.path.basename(full)
    raise SweepError(f"no sweep results at {path!r} (looked for {candidates[0]}/spec.yaml and "
                     f"{candidates[1]}/spec.yaml); give a results folder, a URI, or a sweep "
                     f"folder under ./results")


def _open_results(path: str) -> tuple[Any, Any]:
    """The stored spec and a reader of the folder given (not the name inside it)."""
    from .engine.runner import open_reader
    from .spec.sweep_file import loads_spec
    from .store.folder import SPEC, ResultsFolder

    root, folder = resolve_path(path)
    results = ResultsFolder(root, folder)
    text = results.read_spec()
    if text is None:
        raise SweepError(f"no sweep results at {path!r}: {results.location(SPEC)} is missing")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = loads_spec(text, source=results.location(SPEC))
    return spec, open_reader(spec, root, folder=folder)


def _open_folder(path: str) -> tuple[Any, Any]:
    """The stored spec and the read-only results folder (``sweep.views.results_source``)
    of the folder given."""
    from .spec.sweep_file import loads_spec
    from .views.results_source import SweepFolder

    root, name = resolve_path(path)
    folder = SweepFolder(root, name)
    text = folder.spec_text()
    if text is None:
        raise SweepError(f"no sweep results at {path!r}: {folder.location}/spec.yaml is "
                         f"missing")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return loads_spec(text, source=f"{folder.location}/spec.yaml"), folder



def _reads_results(command: Any) -> Any:
    """A command that reads a results folder: a folder it cannot read (an unreachable
    endpoint, a lost connection) is one line and exit 2, not a traceback."""

    @functools.wraps(command)
    def reading(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            text = str(exc).strip().splitlines()
            raise SweepError(f"could not read the results at {args.path}: "
                             f"{text[0] if text else type(exc).__name__}") from None

    return reading


@_reads_results
def cmd_status(args: argparse.Namespace) -> int:
    from .store.journal import pending_count
    from .views.tables import store_stage_lines

    spec, reader = _open_results(args.path)
    folder = reader.folder
    counts = reader.counts()
    print(f"sweep {spec.name!r} at {folder.location()}")
    print(f"{int(counts['n'].sum())} trials stored; stages planned: {len(spec.stages)}")
    for line in store_stage_lines(reader, spec.metric, counts):
        print(f"  {line}")
    holder, problem = folder.lock.holder(), folder.lock.problem()
    alive = folder.lock.alive()
    if problem:
        print(f"driver: unknown: the lock {folder.lock.path} exists but {problem}; if no "
              f"driver runs, delete it")
    elif holder is None:
        print("driver: none running")
    elif alive is False:
        print(f"driver: none running (stale lock of pid {holder.get('pid')} on "
              f"{holder.get('host')}; the next run takes it over)")
    else:
        state = "running" if alive else "lock held (another host)"
        print(f"driver: {state}: pid {holder.get('pid')} on {holder.get('host')}")
    if spec.checkpoints.enabled:
        print(_checkpoints_line(reader))
    pending = pending_count(folder.journal_dir)
    if pending:
        print(f"{pending} finished trials are in the driver's journal, not yet in Parquet")
    return EXIT_OK


def _checkpoints_line(reader: Any) -> str:
    """What the sweep's checkpoints hold and cost: one listing, three streamed columns."""
    from .store.checkpoints import CheckpointStore

    folder = reader.folder
    try:
        usage = CheckpointStore(folder.root, folder.name).usage()
    except SweepError as exc:
        return f"checkpoints: cannot be listed ({exc})"
    totals = reader.checkpoint_totals()
    line = f"checkpoints: {usage.checkpoints} stored ({_size(usage.bytes)})"
    if totals["trials"]:
        per = totals["seconds"] / totals["trials"]
        line += (f"; {int(totals['trials'])} trial attempts saved {_size(totals['bytes'])} "
                 f"in {totals['seconds']:.1f} s ({per:.2f} s each, restores included), "
                 f"{int(totals['restored'])} restored from one")
    return line


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


@_reads_results
def cmd_top(args: argparse.Namespace) -> int:
    from .views.tables import top_frame, top_records, top_table

    spec, reader = _open_results(args.path)
    metric = spec.metric
    stages = None if args.stage is None else [args.stage]
    df = reader.best(metric, args.k, stages=stages)
    if args.format == "json":
        print(json.dumps(top_records(df, metric, args.k, args.stage), indent=2))
    elif args.format == "csv":
        print(top_frame(df, metric, args.k, args.stage).to_csv(index=False), end="")
    else:
        print(top_table(df, metric, args.k, args.stage))
    return EXIT_OK


@_reads_results
def cmd_report(args: argparse.Namespace) -> int:
    spec, reader = _open_results(args.path)
    output = args.output or f"{spec.folder}-report.html"
    if os.path.isdir(output):
        raise SweepError(f"-o {output}: is a folder; give a file name such as "
                         f"{os.path.join(output, spec.folder + '-report.html')}")
    try:
        from .views.html import build_report, write_report
    except ImportError as exc:
        raise SweepError(f"sweep report needs plotly: pip install 'sweep[report]' ({exc})"
                         ) from None
    df = reader.read()
    states = reader.folder.read_stages(stage.index for stage in spec.stages)
    boxes = [box for state in states for box in state.boxes]
    rungs = [rung for state in states for rung in state.rungs]
    try:
        html = build_report(df, metric=spec.metric.name if spec.metric else None,
                            goal=spec.metric.goal if spec.metric else "minimize",
                            scales=spec.space.scales(), boxes=boxes,
                            title=f"sweep report: {spec.name}", curves=reader.read_curves(),
                            rungs=rungs)
    except RuntimeError as exc:
        raise SweepError(str(exc)) from None
    try:
        write_report(html, output)
    except OSError as exc:
        raise SweepError(f"-o {output}: cannot write the report ({exc})") from None
    print(f"report: {os.path.abspath(output)}")
    return EXIT_OK


def cmd_importance(args: argparse.Namespace) -> int:
    from .views.importance import importance, importance_text

    spec, folder = _open_folder(args.path)
    if spec.metric is None:
        raise SweepError(f"sweep {spec.name!r} has no metric: there is nothing for the "
                         f"parameters to explain")
    result = importance(folder.trials(), spec.metric.name, spec.metric.goal,
                        spec.space.scales(), stages=args.stage, resamples=args.resamples,
                        trees=args.trees, seed=args.seed)
    for problem in folder.problems:
        print(f"sweep: warning: {problem}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps({"sweep": spec.name, "stages": args.stage, **result.to_json()},
                         indent=2))
    else:
        print(importance_text(result))
    return EXIT_OK


def sweep_meta(text: str, source: str) -> Any:
    """What the views need of a stored spec (``sweep.views.results_source.SweepMeta``):
    name, metric and goal, parameter scales, each stage's plan, planned trials and fixed
    values. The views cannot read specs themselves (they sit beside ``sweep.spec``)."""
    from .spec.safe_yaml import load_yaml
    from .spec.sweep_file import from_dict, loads_spec
    from .views.results_source import StageInfo, SweepMeta

    doc = load_yaml(text, source)
    if isinstance(doc, dict) and str(doc.get("objective", "")).startswith("python:"):
        # A sweep run from Python stores its callable by name, which no file can name
        # again; the views need no objective.
        doc = {**doc, "objective": "stored.callable:objective"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = (from_dict(doc, base_dir=".") if isinstance(doc, dict)
                else loads_spec(text, source=source))
    stages = tuple(StageInfo(s.index, s.plan, _planned(spec, s), dict(s.fixed))
                   for s in spec.stages)
    return SweepMeta(name=spec.name, metric=spec.metric.name if spec.metric else None,
                     goal=spec.metric.goal if spec.metric else "minimize",
                     scales=spec.space.scales(), stages=stages)


def _planned(spec: Any, stage: Any) -> int | None:
    """The trials a stage plans, when its plan fixes that in advance."""
    if stage.plan == "grid":
        from .plans.fixed import Grid

        n = len(Grid(stage.space(spec.space), points=stage.axis_points, values=stage.values))
        return min(n, stage.trials) if stage.truncate and stage.trials else n
    return stage.trials or None


def _dashboard_roots(paths: Sequence[str]) -> tuple[list[str], str | None]:
    """(results roots, the sweep to open first) of the paths given."""
    roots: list[str] = []
    first = None
    for path in paths or ["results"]:
        local = "://" not in path
        if local and not os.path.isdir(path) and os.path.isdir(os.path.join("results", path)):
            path = os.path.join("results", path)
        if local and os.path.isfile(os.path.join(path, "spec.yaml")):
            root, name = resolve_path(path)
            first = first or name
        else:
            root = path if not local else os.path.abspath(path)
        if local and not os.path.isdir(root):
            raise SweepError(f"{path!r}: no such folder (give a results root, a sweep's "
                             f"folder, or a sweep name under ./results)")
        if root not in roots:
            roots.append(root)
    return roots, first


def cmd_dashboard(args: argparse.Namespace) -> int:
    from .views.dashboard_server import DashboardServer, is_loopback

    roots, first = _dashboard_roots(args.paths)
    try:
        import plotly  # noqa: F401 - the figures
    except ImportError as exc:
        raise SweepError(f"sweep dashboard needs plotly: pip install 'sweep[report]' ({exc})"
                         ) from None
    if args.nice and hasattr(os, "nice"):
        # A viewer yields to the driver and the trials on a busy machine (measured: on 2
        # busy cores a dashboard at normal priority cost the driver ~10 % of its rate).
        with contextlib.suppress(OSError):
            os.nice(args.nice)
    try:
        server = DashboardServer(roots, host=args.host, port=args.port, describe=sweep_meta,
                                 token=args.token, poll=max(0.1, args.poll))
    except OSError as exc:
        raise SweepError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
                         f" (another dashboard? try --port 0)") from None
    url = server.url
    if first:
        url = url.replace("/?", f"/sweep/{first}?", 1) if "?" in url else url + f"sweep/{first}"
    print(f"sweep dashboard: {', '.join(roots)}")
    print(f"  open {url}")
    if not is_loopback(args.host):
        print(f"sweep: warning: listening on {args.host}: anyone who reaches this port and has "
              f"the token can read every sweep's parameters, metrics and error texts under "
              f"these roots (read-only). Prefer 127.0.0.1 with an SSH tunnel.",
              file=sys.stderr)
    print("  read-only; Ctrl-C to stop", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from .engine.ray_jobs import submit

    _load(args.spec)  # fail here, not on the cluster
    return submit(args.spec, address=args.address, results=args.results, follow=args.follow,
                  working_dir=args.working_dir, submission_id=args.submission_id)


COMMANDS = {
    "validate": cmd_validate, "plan": cmd_plan, "run": cmd_run, "status": cmd_status,
    "top": cmd_top, "report": cmd_report, "importance": cmd_importance,
    "dashboard": cmd_dashboard, "submit": cmd_submit,
}


class _StderrLines(logging.Handler):
    """sweep's log records as ``sweep: warning: ...`` lines on stderr (read at emit time,
    so redirected streams are honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "warning" if record.levelno >= logging.WARNING else "info"
        print(f"sweep: {level}: {record.getMessage()}", file=sys.stderr)


def _log_to_stderr() -> None:
    logger = logging.getLogger("sweep")
    if not any(isinstance(h, _StderrLines) for h in logger.handlers):
        logger.addHandler(_StderrLines(level=logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sweep`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    warnings.showwarning = _warning
    _log_to_stderr()
    try:
        return COMMANDS[args.command](args)
    except (SpecError, SweepError) as exc:
        print(f"sweep: error: {exc}", file=sys.stderr)
        for note in getattr(exc, "notes", []):
            print(f"sweep: warning: {note}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_SIGINT
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
