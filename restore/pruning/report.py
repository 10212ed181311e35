"""The report of a pruning run, rewritten after every round: ``pruning_report.json``, ``.md`` and a
plot of PSNR against the fraction of parameters left (``pruning_psnr.png``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["task_average", "write_report"]


def task_average(metrics: dict[str, dict[str, float]], name: str) -> float:
    """Mean of ``name`` over the tasks (the ``"all"`` group when there is only one task)."""
    tasks = [g for g in metrics if g != "all"] or ["all"]
    values = [metrics[g][name] for g in tasks if name in metrics[g]]
    return sum(values) / len(values) if values else math.nan


def write_report(rounds: Sequence[dict], out_dir: str | Path, protocols: Sequence[str], settings: dict) -> list[Path]:
    """Write the report of the rounds done so far (each a ``round.json`` entry, see
    :mod:`restore.pruning.run`); round 0 (dense) is the reference of the Δ column."""
    out_dir = Path(out_dir)
    rounds = sorted(rounds, key=lambda e: e["round"])
    dense = next((e for e in rounds if e["round"] == 0), None)
    payload = {"protocol": protocols[0] if protocols else None, "protocols": list(protocols), "settings": settings,
               "rounds": rounds}
    json_path = out_dir / "pruning_report.json"
    json_path.write_text(json.dumps(payload, indent=2))

    tasks = [g for g in (rounds[0]["metrics"] if rounds else {}) if g != "all"] or ["all"]
    header = ["round", "steps", "prunable left", "all params left"]
    header += [f"{t} PSNR / SSIM" for t in tasks] + ["task avg PSNR", "Δ vs dense (dB)", "sparse export"]
    lines = [f"# Pruning report ({settings.get('method', 'magnitude')} pruning, {settings.get('scope', 'global')} "
             f"scope, rate {settings.get('rate')}, rewind: {settings.get('rewind')})", "",
             f"Metrics on the validation set after each round's training, protocol: "
             f"{protocols[0] if protocols else '?'}. Round 0 is the dense network.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in rounds:
        avg = e["task_average"]["psnr"]
        delta = avg - dense["task_average"]["psnr"] if dense else math.nan
        cells = [str(e["round"]), str(e["steps"]), f"{e['fraction_prunable']:.2%}", f"{e['fraction_all']:.2%}"]
        task_metrics = [e["metrics"].get(t, {}) for t in tasks]
        cells += [f"{m.get('psnr', math.nan):.2f} / {m.get('ssim', math.nan):.4f}" for m in task_metrics]
        cells += [f"{avg:.2f}", f"{delta:+.2f}", f"{e.get('export_bytes', 0) / 1024:.0f} KiB"]
        lines.append("| " + " | ".join(cells) + " |")
    emptied = rounds[-1].get("emptied_layers") if rounds else None
    if emptied:
        lines += ["", f"Layer collapse: after round {rounds[-1]['round']}, {len(emptied)} prunable tensors have no "
                  f"weights left ({', '.join(emptied)}); keep them with `pruning.rate_overrides` or "
                  "`pruning.scope=layer`."]
    md_path = out_dir / "pruning_report.md"
    md_path.write_text("\n".join(lines) + "\n")
    png_path = out_dir / "pruning_psnr.png"
    plot_psnr(rounds, tasks, png_path, protocols[0] if protocols else "")
    return [json_path, md_path, png_path]


def plot_psnr(rounds: Sequence[dict], tasks: Sequence[str], path: Path, protocol: str) -> None:
    """PSNR per task and on average against the % of all parameters left (log axis, sparser right, ticks
    labelled in percent: ``100%``, ``50%``, ``20%``…)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogFormatter

    class PercentLogFormatter(LogFormatter):
        """matplotlib's choice of which log ticks get a label, each label written as a percentage."""

        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}%" if super().__call__(x, pos) else ""

    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = [100 * e["fraction_all"] for e in rounds]
    for t in tasks:
        ax.plot(x, [e["metrics"].get(t, {}).get("psnr", math.nan) for e in rounds], "o-", ms=3, label=t)
    if len(tasks) > 1:
        ax.plot(x, [e["task_average"]["psnr"] for e in rounds], "k.-", lw=2, label="task average")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(PercentLogFormatter())
    # intermediate ticks (20%, 30%, 40%, 60%…) labelled up to two decades: a pruning run spans 100% → ~1%
    ax.xaxis.set_minor_formatter(PercentLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.invert_xaxis()
    ax.set_xlabel("parameters left (of all, log scale)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"PSNR vs remaining weights ({protocol})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
