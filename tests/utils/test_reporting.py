"""Metric tables from structured results: every column present, incomplete results refused."""

from __future__ import annotations

import json
import math

import pytest

from restore.utils.reporting import check_results, print_metrics, write_metrics

RESULTS = {"all": {"psnr": {"output": 29.8, "input": 20.4}, "ssim": {"output": 0.75, "input": 0.29},
                   "psnr_y4": {"output": 31.6, "input": 25.2}, "ssim_y4": {"output": 0.81, "input": 0.4}},
           "derain": {"psnr": {"output": 30.0, "input": 21.0}, "ssim": {"output": 0.8, "input": 0.3},
                      "psnr_y4": {"output": 32.0, "input": 26.0}, "ssim_y4": {"output": 0.85, "input": 0.45}}}


def test_json_and_markdown_hold_every_value(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich folds a wide table into pytest's 80 columns
    print_metrics(RESULTS, "val", ["RGB [0,1], no crop", "Y (BT.601), crop 4, 8-bit"])
    printed = capsys.readouterr().out
    assert all(v in printed for v in ("25.20", "31.60", "0.4000", "0.8100", "21.00", "30.00"))
    json_path, md_path = write_metrics(RESULTS, tmp_path, ["RGB", "Y"], {"step": 7})
    payload = json.loads(json_path.read_text())
    assert payload["metrics"] == RESULTS and payload["step"] == 7 and payload["protocols"] == ["RGB", "Y"]
    header, _, *rows = md_path.read_text().splitlines()[2:]
    assert header.count("|") == 1 + 1 + 8 and len(rows) == 2
    assert "| derain | 21.00 | 30.00 | 0.3000 | 0.8000 | 26.00 | 32.00 |" in md_path.read_text()


@pytest.mark.parametrize("task, name, side, value, problem", [
    ("derain", "psnr", "output", None, "derain/psnr (output): missing"),
    ("all", "ssim_y4", "input", math.nan, "all/ssim_y4 (input): NaN"),
])
def test_a_missing_or_nan_value_is_an_error_not_a_dropped_column(tmp_path, task, name, side, value, problem):
    broken = json.loads(json.dumps(RESULTS))
    if value is None:
        del broken[task][name][side]
    else:
        broken[task][name][side] = value
    for report in (lambda: check_results(broken), lambda: write_metrics(broken, tmp_path, ["RGB", "Y"]),
                   lambda: print_metrics(broken, "t", ["RGB", "Y"])):
        with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            report()
    assert not (tmp_path / "metrics.json").exists()
    with pytest.raises(ValueError, match="measured no image"):
        check_results({})
