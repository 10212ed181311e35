"""Metric tables: printed with rich, written as JSON and Markdown into the run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping

from rich.console import Console
from rich.table import Table

__all__ = ["split_metrics", "add_task_average", "print_metrics", "write_metrics"]


def split_metrics(metrics: Mapping[str, float], stage: str) -> dict[str, dict[str, float]]:
    """``{"val/psnr": …, "val/denoise/psnr_input": …}`` → ``{"all": {"psnr": …}, "denoise": {…}}``."""
    groups: dict[str, dict[str, float]] = {}
    prefix = f"{stage}/"
    for key, value in sorted(metrics.items()):
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix):].split("/")
        group, name = ("all", parts[0]) if len(parts) == 1 else (parts[0], parts[1])
        groups.setdefault(group, {})[name] = float(value)
    return groups


def add_task_average(groups: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Add an ``"average"`` row, the mean over tasks of each metric (the all-in-one papers' "Average"
    column: every task weighs the same, unlike ``"all"``, the mean over images). Needs ≥ 2 tasks."""
    tasks = [g for g in groups if g not in ("all", "average")]
    if len(tasks) < 2:
        return groups
    names = sorted({n for g in tasks for n in groups[g]})
    groups["average"] = {n: sum(groups[g][n] for g in tasks if n in groups[g]) /
                         sum(1 for g in tasks if n in groups[g]) for n in names}
    return groups


def print_metrics(groups: dict[str, dict[str, float]], title: str, protocols: list[str]) -> None:
    """One row per task; output and input columns for each metric, with the gain in PSNR."""
    table = Table(title=title, caption="protocols: " + "; ".join(
        f"{'(default)' if i == 0 else f'#{i}'} {p}" for i, p in enumerate(protocols)))
    names = sorted({n for g in groups.values() for n in g if not n.startswith(("psnr_input", "ssim_input"))
                    and "_input" not in n})
    table.add_column("task")
    for name in names:
        table.add_column(f"{name} in", justify="right")
        table.add_column(f"{name} out", justify="right")
    for group, values in groups.items():
        cells = []
        for name in names:
            base, _, suffix = name.partition("_")
            inp = values.get(f"{base}_input{'_' + suffix if suffix else ''}", math.nan)
            fmt = ".2f" if base == "psnr" else ".4f"  # dB; SSIM and LPIPS are fractions
            cells += [f"{inp:{fmt}}", f"{values.get(name, math.nan):{fmt}}"]
        table.add_row(group, *cells)
    Console().print(table)


def write_metrics(groups: dict[str, dict[str, float]], out_dir: str | Path, protocols: list[str],
                  extra: dict | None = None) -> tuple[Path, Path]:
    """``metrics.json`` (values + protocols) and ``metrics.md`` (a table) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"protocols": protocols, "metrics": groups, **(extra or {})}
    json_path = out_dir / "metrics.json"
    json_path.write_text(json.dumps(payload, indent=2))
    names = sorted({n for g in groups.values() for n in g})
    lines = [f"Protocols: {'; '.join(protocols)} (unsuffixed metrics use the first).", "",
             "| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {g} | " + " | ".join(f"{v.get(n, math.nan):.4f}" for n in names) + " |" for g, v in groups.items()]
    md_path = out_dir / "metrics.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path
