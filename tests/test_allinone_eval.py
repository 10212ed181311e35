"""All-in-one evaluation: one eval.py run gives the papers' per-task table with the task average."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

import restore
from restore.models.baryir import BaryIRNet
from restore.models.nafnet import NAFBlock
from restore.utils.reporting import add_task_average

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"


def test_task_average_weighs_every_task_the_same():
    def row(psnr, ssim=None):
        out = {"psnr": {"output": psnr, "input": psnr - 5}}
        return out if ssim is None else {**out, "ssim": {"output": ssim, "input": ssim - 0.1}}

    results = {"all": row(30.0), "sots": row(20.0, 0.8), "rain100l": row(30.0, 0.9), "bsd68_s25": row(31.0)}
    out = add_task_average(results)
    assert out["average"]["psnr"]["output"] == pytest.approx(27.0)  # not the image-weighted "all"
    assert out["average"]["psnr"]["input"] == pytest.approx(22.0)
    assert "ssim" not in out["average"]  # only metrics every task reports are averaged
    assert "average" not in results  # the input is left as it was
    assert "average" not in add_task_average({"all": row(1.0), "only": row(1.0)})


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
@pytest.mark.parametrize("data", ["allinone/test", "allinone/unseen"])
def test_one_eval_run_reports_every_task_and_the_average(compose, tmp_path, data):
    from eval import evaluate

    torch.manual_seed(0)
    config = {"_target_": "restore.models.baryir.BaryIRNet",
              "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True}, "width": 8,
              "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1]}
    net = BaryIRNet(NAFBlock, width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    ckpt = restore.export_model(net, tmp_path / "baryir.safetensors", net_config=config)
    cfg = compose("eval", [f"ckpt_path={ckpt}", f"data={data}", "data.num_workers=0", "trainer.accelerator=cpu"])
    with open_dict(cfg):
        for dataset in cfg.data.test:  # two 48² crops per set: every task, in seconds
            dataset.crop_size, dataset.length = 48, 2
    tasks = list(dict.fromkeys(d.task for d in cfg.data.test))
    evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert set(tasks) | {"all", "average"} == set(metrics)
    assert metrics["average"]["psnr"]["output"] == pytest.approx(
        sum(metrics[t]["psnr"]["output"] for t in tasks) / len(tasks))
    table = (out / "metrics.md").read_text()
    assert all(f"| {t} |" in table for t in tasks + ["average"])
    assert "psnr_y" in table  # the BasicSR protocol beside the all-in-one one
    assert OmegaConf.select(cfg, "model.metrics.0.protocol") == "rgb"
