"""W&B's own sweep engine as an oracle: run INSIDE the oracle venv, not with sweep's Python.

    .oracle-venv/bin/python tests/wandb_oracle.py FILE.yaml [FILE.yaml ...]

It imports only W&B's engine (the PyPI package ``sweeps``), yaml, json and sys, so it runs
in a virtual environment that holds nothing of sweep's (tests/oracle_env.py makes that venv
and calls this script). For each file it prints one JSON object on its own line:

    file        the path as given
    method      the file's ``method`` (or null)
    valid       True when W&B's schema check reports no violation
    violations  W&B's messages, as ``wandb sweep`` would print them (the CLI prints them as
                warnings, "Malformed sweep config detected!", and creates the sweep anyway)
    error       why the file could not be checked at all (not YAML, not a mapping), or null
    engine_ok / engine_error
                whether W&B's engine, with the schema enforced (validate=True), suggests a
                first run; for bayes and random without runs, that is just a first sample
    grid        grid files only: every run W&B's grid suggests, in W&B's order, as
                {name: value}; nested parameters (``parameters:`` inside a parameter) are
                nested dicts, exactly as W&B hands them to a run's config
    grid_flat   the same runs with nested parameter names joined by "." (sweep's spelling)
    grid_truncated  True when the grid was cut at GRID_CAP runs
    grid_error  why W&B's grid engine refused the file (it then has no grid), or null

The grid is asked for in one call with n = GRID_CAP + 1, so W&B drops repeated points
(duplicate ``values``) exactly as its engine does within a sweep, without depending on how
a finished run's config is matched back (that matching changed after sweeps 0.2.0).
"""

import json
import sys

import sweeps
import yaml

GRID_CAP = 2000


def _jsonable(value):
    """YAML can hold dates and other non-JSON scalars; keep them visible as strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _nested_names(parameters):
    """The parameters that hold ``parameters:`` (W&B's nested parameters), recursively."""
    nested = {}
    if not isinstance(parameters, dict):
        return nested
    for name, spec in parameters.items():
        if isinstance(spec, dict) and isinstance(spec.get("parameters"), dict):
            nested[name] = _nested_names(spec["parameters"])
    return nested


def _flatten(run, nested, prefix=""):
    flat = {}
    for name, value in run.items():
        key = f"{prefix}{name}"
        if name in nested and isinstance(value, dict):
            flat.update(_flatten(value, nested[name], key + "."))
        else:
            flat[key] = value
    return flat


def _grid(config):
    runs = sweeps.next_runs(config, [], validate=False, n=GRID_CAP + 1)
    points = []
    for run in runs:
        if run is None:
            break
        points.append({name: spec["value"] for name, spec in run.config.items()})
    truncated = len(points) > GRID_CAP
    return points[:GRID_CAP], truncated


def check(path):
    result = {
        "file": path,
        "method": None,
        "valid": False,
        "violations": [],
        "error": None,
        "engine_ok": False,
        "engine_error": None,
    }
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except Exception as exc:  # what `wandb sweep` reports as "Error in configuration file"
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    if not isinstance(config, dict):
        result["error"] = f"not a mapping: {type(config).__name__}"
        return result
    result["method"] = _jsonable(config.get("method"))

    try:
        violations = sweeps.schema_violations_from_proposed_config(config)
    except Exception as exc:
        # W&B raises, rather than reports, when `parameters` or one of its entries is not a
        # mapping; keep the JSON-schema messages it had found before raising.
        from sweeps.config.schema import validator

        violations = [e.message for e in validator.iter_errors(config)]
        violations.append(f"{type(exc).__name__}: {exc}")
    result["violations"] = [str(v) for v in violations]
    result["valid"] = not violations

    try:
        sweeps.next_run(config, [], validate=True)
        result["engine_ok"] = True
    except Exception as exc:
        result["engine_error"] = f"{type(exc).__name__}: {exc}"

    if config.get("method") == "grid":
        result["grid"] = None
        result["grid_flat"] = None
        result["grid_truncated"] = False
        result["grid_error"] = None
        try:
            points, truncated = _grid(config)
        except Exception as exc:
            result["grid_error"] = f"{type(exc).__name__}: {exc}"
        else:
            nested = _nested_names(config.get("parameters"))
            result["grid"] = _jsonable(points)
            result["grid_flat"] = _jsonable([_flatten(p, nested) for p in points])
            result["grid_truncated"] = truncated
    return result


def main(argv):
    if not argv:
        print("usage: wandb_oracle.py FILE.yaml [FILE.yaml ...]", file=sys.stderr)
        return 2
    for path in argv:
        print(json.dumps(check(path), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
