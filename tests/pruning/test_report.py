"""The pruning report's plot: PSNR against the parameters left, the x-axis read in percent."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from restore.pruning.report import write_report


@pytest.mark.parametrize("rounds, expected", [(2, {"100%", "90%", "80%", "70%"}), (15, {"100%", "10%", "4%"})])
def test_pruning_plot_x_axis_reads_in_percent(tmp_path, monkeypatch, rounds, expected):
    drawn = []
    savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (drawn.append(fig), savefig(fig, *a, **k))[1])
    entries = [{"round": k, "steps": 3, "fraction_prunable": 0.8 ** k, "fraction_all": 0.8 ** k,
                "metrics": {"all": {"psnr": 30 - k / 10, "ssim": 0.9}}, "task_average": {"psnr": 30 - k / 10}}
               for k in range(rounds + 1)]
    paths = write_report(entries, tmp_path, ["RGB [0,1], no crop"], {"rate": 0.2, "rewind": "none"})
    assert (tmp_path / "pruning_psnr.png") in paths and (tmp_path / "pruning_psnr.png").stat().st_size > 0
    (ax,) = drawn[0].axes
    low, high = sorted(ax.get_xlim())
    labels = {t.get_text() for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True)
              if t.get_text() and low <= t.get_position()[0] <= high}
    assert expected <= labels and all(label.endswith("%") for label in labels), labels
    assert "%" in ax.xaxis.get_major_formatter()(100) and ax.get_xlim()[0] > ax.get_xlim()[1]  # sparser to the right
