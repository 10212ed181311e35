"""Metric tables: printed with rich, written as JSON and Markdown into the run folder.

They take the structured results a :class:`restore.lightning.RestorationModule` keeps
(``module.results["val"]``): ``{task: {metric: {"output": value, "input": value}}}``, metric names
carrying the protocol suffix of the logged tags (``psnr``, ``ssim``, ``psnr_y4``…). A missing or
NaN value is an error, never an empty or dropped column.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping

from rich.console import Console
from rich.table import Table

__all__ = ["check_results", "add_task_average", "print_metrics", "write_metrics", "describe_run", "metric_value"]

COLUMN_SIDES = ("input", "output")  # column order: the degraded input, then the network's output

Results = Mapping[str, Mapping[str, Mapping[str, float]]]


def check_results(results: Results) -> list[str]:
    """The metric names of ``results`` (in first-seen order); raises ``ValueError`` naming any task, metric
    and side whose value is missing or NaN, or when there is nothing to report."""
    if not results:
        raise ValueError("No metrics to report: the evaluation measured no image")
    names: list[str] = []
    for values in results.values():
        names += [n for n in values if n not in names]
    problems = []
    for task, values in results.items():
        for name in names:
            for side in COLUMN_SIDES:
                value = values.get(name, {}).get(side)
                if value is None or math.isnan(value):
                    problems.append(f"{task}/{name} ({side}): {'missing' if value is None else 'NaN'}")
    if problems:
        raise ValueError("Incomplete metrics, not reported: " + "; ".join(problems))
    return names


def add_task_average(results: Results) -> dict:
    """``results`` with an ``"average"`` row: the mean over tasks of each metric, output and input (the
    all-in-one papers' "Average" column: every task weighs the same, unlike ``"all"``, the mean over
    images). Left as it is with fewer than two tasks."""
    out = {task: {n: dict(v) for n, v in values.items()} for task, values in results.items()}
    tasks = [t for t in out if t not in ("all", "average")]
    if len(tasks) < 2:
        return out
    names = [n for n in out[tasks[0]] if all(n in out[t] for t in tasks)]
    out["average"] = {n: {side: sum(out[t][n][side] for t in tasks) / len(tasks) for side in COLUMN_SIDES}
                      for n in names}
    return out


def _fmt(name: str, value: float) -> str:
    return f"{value:.2f}" if name.startswith("psnr") else f"{value:.4f}"  # dB; SSIM and LPIPS are fractions


def print_metrics(results: Results, title: str, protocols: list[str]) -> None:
    """One row per task; input and output columns for each metric."""
    names = check_results(results)
    table = Table(title=title, caption="protocols: " + "; ".join(
        f"{'(default)' if i == 0 else f'#{i}'} {p}" for i, p in enumerate(protocols)))
    table.add_column("task")
    for name in names:
        for side in COLUMN_SIDES:
            table.add_column(f"{name} {'in' if side == 'input' else 'out'}", justify="right")
    for task, values in results.items():
        table.add_row(task, *[_fmt(n, values[n][side]) for n in names for side in COLUMN_SIDES])
    Console().print(table)


def describe_run(checkpoint: str | None, step: int | None, data: str | None, sets: list[dict],
                 label: str = "Test sets") -> list[str]:
    """The lines above a metrics table in ``metrics.md``: the checkpoint and its step, the data config and
    each test set with its degradation (``sets``: :meth:`restore.data.RestorationDataModule.describe_sets`)."""
    lines = []
    if checkpoint:
        lines.append(f"Checkpoint: `{checkpoint}` (global step {step if step is not None else 'unknown'}).")
    elif step is not None:
        lines.append(f"Global step: {step}.")
    if data:
        lines.append(f"Data: {data}.")
    if sets:
        lines += [f"{label}:"] + [f"- {s['task']}: {s['images']} images, {s['source']}; degradation: "
                                   f"{s['degradation']}" for s in sets]
    return lines + [""] if lines else []


def write_metrics(results: Results, out_dir: str | Path, protocols: list[str],
                  extra: dict | None = None, header: list[str] | None = None) -> tuple[Path, Path]:
    """``metrics.json`` (protocols + results + ``extra``) and ``metrics.md`` (``header`` lines, e.g. from
    :func:`describe_run`, then the table) in ``out_dir``."""
    names = check_results(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"protocols": protocols, "metrics": {t: {n: dict(v) for n, v in vals.items()}
                                                   for t, vals in results.items()}, **(extra or {})}
    json_path = out_dir / "metrics.json"
    json_path.write_text(json.dumps(payload, indent=2))
    columns = [f"{n} {'in' if side == 'input' else 'out'}" for n in names for side in COLUMN_SIDES]
    lines = list(header or []) + [f"Protocols: {'; '.join(protocols)} (unsuffixed metrics use the first).", "",
             "| task | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {task} | " + " | ".join(_fmt(n, values[n][side]) for n in names for side in COLUMN_SIDES) + " |"
              for task, values in results.items()]
    md_path = out_dir / "metrics.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def metric_value(metrics: Mapping[str, float], name: str | None, key: str = "optimized_metric") -> float | None:
    """The value of the logged metric ``name`` (what ``train.py`` returns to a Hydra sweeper); None when
    ``name`` is None. A name the run did not log raises ``KeyError`` naming the config ``key`` and the
    metrics that were logged, rather than handing the sweeper a missing value."""
    if name is None:
        return None
    if name not in metrics:
        raise KeyError(f"{key}={name!r} was not logged by this run; logged metrics: "
                       f"{', '.join(sorted(metrics)) or 'none (did the run validate?)'}")
    return float(metrics[name])
