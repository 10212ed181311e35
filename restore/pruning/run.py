"""Iterative magnitude pruning with rewinding (lottery-ticket IMP), the procedure of MIR-L, on any
experiment of the toolkit.

MIR-L: "Iterative Magnitude Pruning for Multi-Task Image Restoration" (WI-IAT 2025), after
Frankle & Carbin, "The Lottery Ticket Hypothesis", ICLR 2019, Algorithm 1 (iterative pruning with
resetting to θ₀), and Frankle et al., ICML 2020 (rewinding to step k):

1. build the network (loading ``pretrained=...`` weights if given), save θ₀ (``theta0.safetensors``);
2. round 0: train the dense network (the experiment's schedule);
3. round r = 1…N: remove the ``rate`` (20%) smallest-|w| of the surviving prunable weights
   (global threshold, or per layer; per-layer rate overrides), rewind the survivors *and every
   other parameter and buffer* to θ₀ (or to the weights of step k, or keep the trained ones:
   ``rewind: none`` is plain fine-tuning), retrain with a fresh optimiser, schedule and EMA.

Run folder (``paths.output_dir``, or the folder given as ``ckpt_path`` to resume)::

    theta0.safetensors             θ₀ (dense state dict)    pruning_state.json   settings, prunable names
    theta_step<k>.safetensors      late-rewinding point      pruning_report.{json,md}, pruning_psnr.png
    round_XX/masks.safetensors     masks trained in round XX (bool)
    round_XX/checkpoints/          Lightning checkpoints (best/last; masks folded, and under pruning_masks)
    round_XX/model.sparse.safetensors   the round's network (restore-sparse; ``restore.load_model``)
    round_XX/metrics.{json,md}, round.json   validation metrics; round.json marks the round done

A crashed run resumes at the first round without ``round.json``: its masks and rewinding target
come from the files above, so the resumed run prunes exactly as an uninterrupted one. Within that
round, training resumes at the step of its ``checkpoints/last.ckpt`` (written on Ctrl-C, and at each
validation) when that checkpoint holds the round's masks; otherwise the round restarts at step 0
(logged). What a resume reads — ``pruning_state.json``, θ₀, ``theta_step<k>``, masks, the sparse
exports, ``round.json``, checkpoints — is written atomically (complete or absent, never truncated; the
weights files with a digest), and verified when read back: a damaged file is a ``DamagedFileError``
naming it and what to do. Temporary files of a write cut short by a kill are removed when the run
starts (under its lock).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console

from restore.checkpoint import load_pretrained, read_checkpoint
from restore.errors import DamagedFileError, WeightsSizeError
from restore.pruning.callbacks import (
    DenseCheckpoints,
    LastValidationStep,
    MaskedCheckpointIO,
    PrunedWeightsGuard,
    RoundProgressBar,
    WeightSnapshot,
)
from restore.pruning.masks import (
    DEFAULT_LAYER_TYPES,
    PrunableWeight,
    count_parameters,
    dense_state_dict,
    get_masks,
    load_dense_state,
    prune_round,
    select_prunable,
    set_masks,
)
from restore.pruning.report import task_average, write_report
from restore.pruning.sparse import export_sparse
from restore.utils.config import ConfigError, instantiate_group, instantiate_node, instantiate_trainer, record_run
from restore.utils.files import atomic_write_text, remove_stale_temps
from restore.utils.reporting import write_metrics
from restore.weights_io import load_tensors, open_weights, save_weights

__all__ = ["IterativePruning", "run_pruning"]

log = logging.getLogger(__name__)

REWIND_TARGETS = ("init", "step", "none")
# settings that decide the masks: a resumed run must use the same
_MASK_SETTINGS = ("schedule", "rate", "scope", "rate_overrides", "method", "rewind", "rewind_step", "include",
                  "exclude", "layer_types", "seed")


@dataclass
class IterativePruning:
    """Settings of a pruning run (``configs/pruning/*.yaml``).

    Args:
        rounds: pruning rounds N after the dense training; (1 − rate)^N of the prunable weights
            remain (15 rounds at 20% ⇒ 3.5%, MIR-L's setting).
        rate: fraction of the *surviving* prunable weights removed per round.
        scope: ``"global"`` (one |w| threshold across layers, MIR-L) or ``"layer"`` (each layer at ``rate``).
        rate_overrides: ``{name pattern: rate}``; matching weights are pruned on their own at that
            rate (e.g. ``{"outro.weight": 0.1}``: the output layer at half rate).
        method: ``"magnitude"`` or ``"random"`` (the control: random survivors are removed).
        rewind: ``"init"`` (θ₀, lottery ticket), ``"step"`` (weights after step ``rewind_step`` of the
            dense training), ``"none"`` (continue from the trained weights: fine-tuning).
        rewind_step: k for ``rewind="step"``.
        include, exclude: ``fnmatch`` patterns on weight names (``encoders.0.0.conv1.weight``).
        layer_types: ``torch.nn`` classes whose ``weight`` is prunable (conv and linear by default).
        schedule: ``"iterative"`` (IMP: ``rounds`` rounds at ``rate``) or ``"one_shot"`` (the control:
            one pruning straight to the sparsity of round ``rounds``, then one training of
            ``rounds`` × ``trainer.max_steps`` steps, i.e. the same total steps as IMP).
        pruned_round_steps: training steps of each pruned round; ``None`` = ``trainer.max_steps``
            (iterative) or ``rounds`` × ``trainer.max_steps`` (one-shot).
        resume: resume the run in ``paths.output_dir`` (or pass the run folder as ``ckpt_path``).
        seed: seed of random pruning.
    """

    rounds: int = 15
    rate: float = 0.2
    scope: str = "global"
    rate_overrides: dict[str, float] = field(default_factory=dict)
    method: str = "magnitude"
    rewind: str = "init"
    rewind_step: int | None = None
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    layer_types: list[str] = field(default_factory=lambda: list(DEFAULT_LAYER_TYPES))
    schedule: str = "iterative"
    pruned_round_steps: int | None = None
    resume: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        self.rate_overrides = {str(k): float(v) for k, v in dict(self.rate_overrides or {}).items()}
        self.include, self.exclude = list(self.include), list(self.exclude)
        self.layer_types = list(self.layer_types)
        if self.rounds < 0:
            raise ValueError(f"pruning.rounds must be >= 0, got {self.rounds}")
        rates = {"rate": self.rate, **{f"rate_overrides[{k}]": v for k, v in self.rate_overrides.items()}}
        for name, r in rates.items():
            if not 0.0 <= r < 1.0:
                raise ValueError(f"pruning.{name} must be in [0, 1), got {r}")
        if self.scope not in ("global", "layer"):
            raise ValueError(f"pruning.scope must be 'global' or 'layer', got {self.scope!r}")
        if self.method not in ("magnitude", "random"):
            raise ValueError(f"pruning.method must be 'magnitude' or 'random', got {self.method!r}")
        if self.schedule not in ("iterative", "one_shot"):
            raise ValueError(f"pruning.schedule must be 'iterative' or 'one_shot', got {self.schedule!r}")
        if self.schedule == "one_shot" and self.rounds < 1:
            raise ValueError("pruning.schedule=one_shot needs pruning.rounds >= 1 (the IMP round whose sparsity "
                             "it matches)")
        if self.rewind not in REWIND_TARGETS:
            raise ValueError(f"pruning.rewind must be one of {REWIND_TARGETS}, got {self.rewind!r}")
        if self.rewind == "step" and (self.rewind_step is None or self.rewind_step < 1):
            raise ValueError(f"pruning.rewind=step needs pruning.rewind_step >= 1, got {self.rewind_step}")

    def mask_settings(self) -> dict:
        """The settings a resumed run must share (``rounds`` too for one-shot: it sets the sparsity)."""
        keys = _MASK_SETTINGS + (("rounds",) if self.schedule == "one_shot" else ())
        return {k: v for k, v in asdict(self).items() if k in keys}


# -- run folder --------------------------------------------------------------------------------
class RunFolder:
    """Paths of a pruning run's files (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def round(self, r: int) -> Path:
        return self.root / f"round_{r:02d}"

    @property
    def state(self) -> Path:
        return self.root / "pruning_state.json"

    @property
    def theta0(self) -> Path:
        return self.root / "theta0.safetensors"

    def theta_step(self, k: int) -> Path:
        return self.root / f"theta_step{k}.safetensors"

    def done(self, r: int) -> bool:
        """Whether round r is finished (its ``round.json`` exists; checked, so a damaged one is named)."""
        path = self.round(r) / "round.json"
        return path.is_file() and bool(_round_entry(path))

    def entries(self) -> list[dict]:
        return [_round_entry(p) for p in sorted(self.root.glob("round_*/round.json"))]

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``run.lock`` (this process's id) while working: a second process on the same run
        (e.g. a resume started before the first finished) would retrain and overwrite its rounds."""
        path = self.root / "run.lock"
        if path.is_file():
            pid = int(path.read_text().strip() or 0)
            if pid and pid != os.getpid() and _alive(pid):
                raise RuntimeError(f"{self.root} is in use by process {pid} (its {path}); wait for it to finish, "
                                   "or delete the file if that process is gone")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(os.getpid()))
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _find_run_root(path: Path) -> Path:
    """A run folder, or a file inside one (``<run>/round_03/checkpoints/last.ckpt``) → the run folder."""
    for candidate in [path, *path.parents]:
        if (candidate / "pruning_state.json").is_file():
            return candidate
    raise FileNotFoundError(f"ckpt_path={path} is not inside a pruning run folder (no pruning_state.json found in it "
                            "or its parents); pass the run folder, e.g. outputs/<task>/<timestamp>")


def _read_json(path: Path, fix: str) -> dict:
    """A JSON object the run wrote; a damaged file is a :class:`DamagedFileError` naming it and ``fix``."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DamagedFileError(f"{path} is damaged (not valid JSON: {err}); {fix}") from None
    if not isinstance(value, dict):
        raise DamagedFileError(f"{path} is damaged (a JSON {type(value).__name__}, not an object); {fix}")
    return value


def _round_entry(path: Path) -> dict:
    """A round's ``round.json``, checked: it parses and names its own round."""
    fix = "delete it, and the resumed run trains that round again"
    entry = _read_json(path, fix)
    if entry.get("round") != int(path.parent.name.removeprefix("round_")) or "metrics" not in entry:
        raise DamagedFileError(f"{path} is damaged (no metrics, or another round's number); {fix}")
    return entry


def _read_export(path: Path, fix: str) -> dict[str, torch.Tensor]:
    """The dense state dict of a round's sparse export, verified; a damaged one names ``fix``."""
    try:
        return read_checkpoint(path)[0]
    except (FileNotFoundError, WeightsSizeError):
        raise
    except DamagedFileError as err:
        raise DamagedFileError(str(err).rsplit("; ", 1)[0] + f"; {fix}") from None
    except (OSError, ValueError) as err:
        raise DamagedFileError(f"{path} is damaged ({err}); {fix}") from None


# -- the run -----------------------------------------------------------------------------------
def run_pruning(cfg: DictConfig) -> dict[str, float]:
    """Run (or resume) the pruning rounds of ``cfg.pruning`` on the experiment ``cfg``.

    Returns:
        the last round's validation metrics (``val/...``).
    """
    settings = instantiate_node(cfg, "pruning")
    if not isinstance(settings, IterativePruning):
        raise ConfigError(f"`pruning` must build a restore.pruning.IterativePruning, got {type(settings).__name__}")
    ckpt = cfg.get("ckpt_path")
    if ckpt:
        folder, resume = RunFolder(_find_run_root(Path(ckpt))), True
    else:
        folder = RunFolder(cfg.paths.output_dir)
        resume = settings.resume and folder.state.is_file()
        if folder.state.is_file() and not resume:
            raise FileExistsError(f"{folder.root} already holds a pruning run: resume it with pruning.resume=true "
                                  f"(or ckpt_path={folder.root}), or choose another paths.output_dir")
    with folder.lock():
        for stale in remove_stale_temps(folder.root):  # writes a kill cut short (this run's own, under its lock)
            log.info("Removed %s, left by a write that did not finish", stale)
        return _run(cfg, settings, folder, resume)


def _run(cfg: DictConfig, settings: IterativePruning, folder: RunFolder, resume: bool) -> dict[str, float]:
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder.root)
    if resume:
        log.info("Resuming the pruning run in %s", folder.root)
        with open(folder.root / "cmd.txt", "a") as f:
            f.write("# resumed: " + " ".join(sys.argv) + "\n")
    else:
        record_run(folder.root, cfg)

    fast_dev_run = bool(OmegaConf.select(cfg, "trainer.fast_dev_run", default=False))
    rounds = min(settings.rounds, 1) if fast_dev_run else settings.rounds  # one pruned round checks everything
    one_shot = settings.schedule == "one_shot"
    seed = cfg.get("seed")
    if seed is not None:
        L.seed_everything(seed, workers=True)
    datamodule = instantiate_node(cfg, "data")
    model = instantiate_node(cfg, "model")
    net_config = OmegaConf.to_container(cfg.model.net, resolve=True) if "net" in cfg.model else None
    if hasattr(model, "net_config"):
        model.net_config = net_config
    net = model.net
    if cfg.get("pretrained") and not resume:  # resuming reads θ₀ back from the run folder
        log.info("Pretrained weights <%s>: they become θ₀", cfg.pretrained)
        load_pretrained(net, cfg.pretrained)
    weights = select_prunable(net, settings.include, settings.exclude, settings.layer_types)

    theta0 = _theta0(folder, net, weights, settings, net_config, resume)
    set_masks(weights, {w.name: torch.ones_like(w.raw, dtype=torch.bool) for w in weights})
    steps0 = int(cfg.trainer.max_steps)
    if settings.rewind == "step" and settings.rewind_step > steps0 and not fast_dev_run:
        raise ValueError(f"pruning.rewind_step={settings.rewind_step} is beyond the dense training's "
                         f"trainer.max_steps={steps0}")

    console = Console()
    metrics: dict[str, float] = {}
    for r in range(2 if one_shot else rounds + 1):
        if folder.done(r):
            continue
        # one-shot: round 1 prunes straight to the schedule's last round
        _prepare_round(r, folder, net, weights, settings, theta0, prune_to=rounds if one_shot else r)
        steps = steps0 if r == 0 else int(settings.pruned_round_steps or (rounds * steps0 if one_shot else steps0))
        counts = count_parameters(net, weights)
        console.rule(f"[bold]Pruning round {r}/{1 if one_shot else rounds}: {counts['fraction_prunable']:.2%} of "
                     f"prunable weights, {counts['fraction_all']:.2%} of all parameters; {steps} steps")
        metrics = _train_round(cfg, model, datamodule, r, rounds, steps, weights, settings, folder, counts)
        _finish_round(r, folder, net, model, net_config, weights, counts, steps, metrics, settings)
    if not metrics and folder.entries():
        log.info("All %d rounds of %s are done already", rounds, folder.root)
    log.info("Pruning report: %s", folder.root / "pruning_report.md")
    return metrics


def _theta0(folder: RunFolder, net: torch.nn.Module, weights: Sequence[PrunableWeight], settings: IterativePruning,
            net_config: dict | None, resume: bool) -> dict[str, torch.Tensor]:
    """θ₀, saved before any training (or read back when resuming, after checking the settings match).

    With ``pretrained=...`` θ₀ is the pretrained network: rewinding (``rewind=init``) then goes back to the end
    of that dense training, i.e. late rewinding (Frankle et al. 2020, "Linear Mode Connectivity and the
    Lottery Ticket Hypothesis", rewinding to iteration k > 0) with k = the whole dense training.
    """
    names = [w.name for w in weights]
    if resume:
        fix = "it records the run's settings; restore it from a copy, or start a new run (another paths.output_dir)"
        state = _read_json(folder.state, fix)
        if not isinstance(state.get("settings"), dict) or "prunable" not in state or "net_config" not in state:
            raise DamagedFileError(f"{folder.state} is damaged (settings, prunable or net_config missing); {fix}")
        changed = [k for k, v in settings.mask_settings().items() if state["settings"].get(k) != v]
        if changed:
            diff = ", ".join(f"{k}={state['settings'].get(k)!r}→{getattr(settings, k)!r}" for k in changed)
            raise ValueError(f"cannot resume {folder.root}: pruning settings differ from the run's: {diff}")
        if state["prunable"] != names or state["net_config"] != net_config:
            raise ValueError(f"cannot resume {folder.root}: the network or its prunable weights differ from the run's "
                             f"(net_config or pruning include/exclude/layer_types changed)")
        return load_tensors(folder.theta0, fix="θ₀, the weights every round rewinds to, cannot be rebuilt from the "
                                               "run's other files: start a new run (another paths.output_dir)")
    theta0 = {k: v.clone() for k, v in dense_state_dict(net).items()}
    save_weights(theta0, folder.theta0,
                 metadata={"what": "theta0: weights before any training of this run (pretrained ones if given)"})
    atomic_write_text(folder.state, json.dumps({"settings": settings.mask_settings(), "prunable": names,
                                                "net_config": net_config}, indent=2))
    return theta0


def _prepare_round(r: int, folder: RunFolder, net: torch.nn.Module, weights: Sequence[PrunableWeight],
                   settings: IterativePruning, theta0: dict[str, torch.Tensor], prune_to: int) -> None:
    """Masks and weights at the start of round r (round 0: θ₀, no pruning; else pruned to the
    sparsity of schedule round ``prune_to``, which is r except for one-shot pruning)."""
    round_dir = folder.round(r)
    if r == 0:
        set_masks(weights, {w.name: torch.ones_like(w.raw, dtype=torch.bool) for w in weights})
        load_dense_state(net, theta0)
    else:
        prev = folder.round(r - 1)
        redo = f"delete the folder {prev} and resume: round {r - 1} is then trained again"
        set_masks(weights, load_tensors(prev / "masks.safetensors", fix=redo))
        load_dense_state(net, _read_export(prev / "model.sparse.safetensors", redo))  # round r−1's trained net
        saved = round_dir / "masks.safetensors"
        if saved.is_file():  # a crashed round: train the masks it had
            set_masks(weights, load_tensors(saved, fix=f"delete it and resume: round {r} prunes again from round "
                                                       f"{r - 1}'s files, to the same masks"))
        else:
            prune_round(weights, prune_to, settings.rate, settings.scope, settings.rate_overrides, settings.method,
                        settings.seed)
        if settings.rewind == "init":
            load_dense_state(net, theta0)
        elif settings.rewind == "step":
            path = folder.theta_step(settings.rewind_step)
            if not path.is_file():
                raise FileNotFoundError(f"{path} (the weights of step {settings.rewind_step}, written in round 0) "
                                        "is missing: rewind=step needs the dense round to pass that step")
            load_dense_state(net, load_tensors(path, fix="it is written in round 0 only: start a new run (another "
                                                         "paths.output_dir)"))
        # rewind == "none": keep the trained weights (masked), i.e. fine-tune
    save_weights(get_masks(weights), round_dir / "masks.safetensors", metadata={"round": str(r)})  # creates the folder


def _round_config(cfg: DictConfig, round_dir: Path, steps: int) -> DictConfig:
    """The experiment's config with this round's folder (checkpoints, logs follow) and step count."""
    rcfg = cfg.copy()
    with open_dict(rcfg):
        rcfg.paths.output_dir = str(round_dir)
        rcfg.trainer.max_steps = steps
    return rcfg


def _train_round(cfg: DictConfig, model, datamodule, r: int, rounds: int, steps: int,
                 weights: Sequence[PrunableWeight], settings: IterativePruning, folder: RunFolder,
                 counts: dict) -> dict[str, float]:
    """Fresh trainer, optimiser, schedule and EMA; fit; validate the final (EMA) weights."""
    seed = cfg.get("seed")
    if seed is not None:
        L.seed_everything(int(seed) + r, workers=True)  # a resumed round trains as the uninterrupted one
    rcfg = _round_config(cfg, folder.round(r), steps)
    callbacks = [RoundProgressBar(r, rounds, counts["fraction_prunable"]) if isinstance(c, RichProgressBar) else c
                 for c in instantiate_group(rcfg, "callbacks")]
    callbacks += [PrunedWeightsGuard(weights), DenseCheckpoints()]  # after the EMA callback: run after it
    if r == 0 and settings.rewind == "step":
        callbacks.append(WeightSnapshot(settings.rewind_step, folder.theta_step(settings.rewind_step),
                                        lambda module: module.net))
    last_validation = LastValidationStep()
    callbacks.append(last_validation)
    loggers = instantiate_group(rcfg, "logger")
    trainer: L.Trainer = instantiate_trainer(rcfg, callbacks=callbacks, logger=loggers or False)
    ckpt_path, done_steps = _interrupted_round(folder, r, weights, steps)
    if ckpt_path is not None and done_steps >= steps:
        # the round's training had ended (the run stopped while writing the round's files): its final (EMA)
        # weights are the checkpoint's; Lightning would skip fit, and with it the EMA copy at its end
        load_dense_state(model.net, read_checkpoint(ckpt_path)[0])
        trainer.validate(model=model, datamodule=datamodule, verbose=False)
        return {k: float(v) for k, v in trainer.callback_metrics.items()}
    if ckpt_path is not None:
        trainer.strategy.checkpoint_io = MaskedCheckpointIO()  # reads the folded masks back into the pruned net
    trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    if last_validation.step != trainer.global_step:  # else the last validation saw the final (EMA) weights
        trainer.validate(model=model, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def _interrupted_round(folder: RunFolder, r: int, weights: Sequence[PrunableWeight],
                       steps: int) -> tuple[Path | None, int]:
    """(Round r's ``checkpoints/last.ckpt``, its step) when an interrupted attempt left one trained with
    the round's masks (Ctrl-C writes it at that step, validation at its own): training resumes from it.
    Else (None, 0): the round starts at step 0 (logged when a checkpoint was there with other masks)."""
    path = folder.round(r) / "checkpoints" / "last.ckpt"
    if not path.is_file():
        return None, 0
    fix = f"delete it, and round {r} restarts at step 0"
    try:
        with open_weights(path) as f:
            ckpt = f.checkpoint(fix=fix)
            saved, step = ckpt.get("pruning_masks"), int(ckpt.get("global_step", 0))
            current = get_masks(weights)
            same = (isinstance(saved, dict) and saved.keys() == current.keys()
                    and all(torch.equal(saved[k].bool(), current[k].cpu().bool()) for k in current))
    except (DamagedFileError, WeightsSizeError):
        raise
    except (OSError, ValueError) as err:
        raise DamagedFileError(f"{err}; {fix}") from None
    if not same:
        log.warning("Round %d: %s holds other masks than the round's (an earlier attempt): the round restarts at "
                    "step 0", r, path)
        return None, 0
    log.info("Round %d resumes at step %d of %d from %s", r, step, steps, path)
    return path, step


def _finish_round(r: int, folder: RunFolder, net: torch.nn.Module, model, net_config: dict | None,
                  weights: Sequence[PrunableWeight], counts: dict, steps: int, metrics: dict[str, float],
                  settings: IterativePruning) -> None:
    """Export the round's network, write its metrics and round.json (last: marks it done), the report."""
    round_dir = folder.round(r)
    export = export_sparse(net, round_dir / "model.sparse.safetensors", net_config or {})
    protocols = list(getattr(model, "protocols", []))
    results = model.results["val"]  # {task: {metric: {"output", "input"}}} of the final (EMA) weights
    write_metrics(results, round_dir, protocols, {"round": r, "step": steps})
    # the report's per-task rows: the output's values, the input's as `<metric>_input`
    groups = {task: {**{n: v["output"] for n, v in m.items()}, **{f"{n}_input": v["input"] for n, v in m.items()}}
              for task, m in results.items()}
    # layer collapse: global magnitude pruning can empty whole layers (e.g. the output conv), which
    # cuts the network; rate_overrides / scope=layer keep them
    emptied = [w.name for w in weights if w.is_masked and not bool(w.mask.any())]
    if emptied:
        log.warning("Round %d: %d prunable tensors have no weights left: %s", r, len(emptied), ", ".join(emptied))
    entry = {"round": r, "steps": steps, **counts, "emptied_layers": emptied, "metrics": groups,
             "task_average": {"psnr": task_average(groups, "psnr"), "ssim": task_average(groups, "ssim")},
             "export": str(export.relative_to(folder.root)), "export_bytes": export.stat().st_size}
    atomic_write_text(round_dir / "round.json", json.dumps(entry, indent=2))
    write_report(folder.entries(), folder.root, protocols, asdict(settings))
