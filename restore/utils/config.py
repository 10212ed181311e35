"""Helpers around Hydra: instantiation whose errors name the config file, run folders, run records, and
entry-point failures reported in one line."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from restore.errors import ConfigError

__all__ = ["compose_config", "optuna_direction", "instantiate_node", "instantiate_group", "instantiate_trainer",
           "fit_trainer_to_device", "config_choice", "config_source", "record_run", "task_config", "unique_run_dir",
           "launch_run_name", "report_failures", "ConfigError"]

log = logging.getLogger(__name__)


def launch_run_name() -> str | None:
    """The run-folder name every process of one multi-process launch shares, or None outside such a launch.

    ``torchrun`` and ``srun`` start ``train.py`` once per rank, and each process resolves the run folder itself:
    ``${now:}`` differs by a second between ranks and ``unique_dir`` gives a later rank ``<timestamp>_1``, so one
    run would be spread over several folders. Under a launcher the name comes from the launch's own id instead:

    - ``torchrun`` (``WORLD_SIZE`` > 1): ``torchrun-<TORCHELASTIC_RUN_ID>`` — a fresh UUID on one node, the
      ``--rdzv-id`` given on several (its default ``none`` is not an id: then SLURM's, else None);
    - ``srun`` with several tasks in the step: ``slurm-<SLURM_JOB_ID>.<SLURM_STEP_ID>`` (Slurm's job.step).

    Lightning's own DDP launcher (``trainer=ddp`` without either) passes rank 0's folder to the processes it
    starts (``hydra.run.dir=...``), so it needs nothing from here.
    """
    env = os.environ
    if int(env.get("WORLD_SIZE", "1")) > 1 and env.get("TORCHELASTIC_RUN_ID", "none") != "none":
        return f"torchrun-{env['TORCHELASTIC_RUN_ID']}"
    tasks = env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS", "1"))
    if "SLURM_JOB_ID" in env and "SLURM_STEP_ID" in env and int(tasks) > 1:
        return f"slurm-{env['SLURM_JOB_ID']}.{env['SLURM_STEP_ID']}"
    return None


def _launch_rank() -> int:
    """This process's global rank under torchrun (``RANK``) or srun (``SLURM_PROCID``)."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def _launch_restart() -> int:
    """How often torchrun restarted the workers, or Slurm requeued the job: the same run carrying on."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or os.environ.get("SLURM_RESTART_COUNT") or 0)


def unique_run_dir(path: str) -> str:
    """Create ``path`` — or ``path_1``, ``path_2``… when it exists — and return the one created.

    ``os.mkdir`` fails when the folder exists, so two runs started in the same second (the
    timestamp of ``outputs/<task>/<timestamp>``) never share a folder, even when racing. Registered
    as the OmegaConf resolver ``${unique_dir:...}`` (cached per config, as Hydra's ``${now:}``, so a
    run and the jobs of a sweep resolve it once); ``configs/hydra/default.yaml`` uses it.

    Under ``torchrun`` or ``srun`` (:func:`launch_run_name`) the last part of ``path`` (the timestamp) is replaced
    by the launch's id and every rank gets that one folder; a folder of that name that already holds checkpoints
    is refused on the first attempt (the id was used by another run), kept on a restart or requeue.

    A folder this process created and left empty (the run failed before writing anything) is removed when the
    process exits, with the parents it created for it; a shared launch folder is left to its ranks.
    """
    base = Path(path)
    created = [p for p in base.parents if not p.exists()]  # deepest first: removed again if left empty
    base.parent.mkdir(parents=True, exist_ok=True)
    shared = launch_run_name()
    if shared is not None:
        run_dir = base.with_name(shared)
        if _launch_rank() == 0 and _launch_restart() == 0 and (run_dir / "checkpoints").exists():
            raise FileExistsError(f"Run folder {run_dir} (named by the launcher's id) already holds another run's "
                                  "checkpoints: launch with a new id (torchrun --rdzv-id=...), or resume that run "
                                  "with ckpt_path=<its checkpoints/last.ckpt> in a new launch")
        run_dir.mkdir(exist_ok=True)  # the ranks race to create it: each one may be first
        return str(run_dir)
    for n in itertools.count():
        candidate = base if n == 0 else base.with_name(f"{base.name}_{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        atexit.register(_remove_if_empty, [candidate, *created])
        return str(candidate)
    raise AssertionError("unreachable")


def _remove_if_empty(folders: list[Path]) -> None:
    """At exit: remove the run folder (and the parents) this process created if nothing was written into them (a
    run that failed before Hydra saved its config, e.g. on a bad logging setting), deepest first. ``rmdir``
    removes empty folders only: a folder with any file stays, and so do its parents."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


OmegaConf.register_new_resolver("unique_dir", unique_run_dir, use_cache=True, replace=True)


def optuna_direction(mode: str) -> str:
    """``optimized_mode`` in Lightning's words (``max``/``min``) → Optuna's (``maximize``/``minimize``).

    Registered as ``${optuna_direction:...}`` so ``configs/hparams_search/`` follows the one setting that
    early stopping reads too.
    """
    directions = {"max": "maximize", "min": "minimize"}
    if mode not in directions:
        raise ValueError(f"optimized_mode must be max or min, got {mode!r}")
    return directions[mode]


OmegaConf.register_new_resolver("optuna_direction", optuna_direction, replace=True)


def _hydra_runtime() -> DictConfig | None:
    try:
        return HydraConfig.get()
    except ValueError:  # not inside a Hydra app (tests composing by hand)
        return None


def config_choice(group: str) -> str | None:
    """The option Hydra chose for a config group in this run (``data`` → ``denoise/cbsd68``), or None outside a
    Hydra app or for an empty group."""
    runtime = _hydra_runtime()
    choice = runtime.runtime.choices.get(group) if runtime is not None else None
    return None if choice in (None, "null") else str(choice)


def config_source(key: str) -> str:
    """Where the value of a dotted key comes from, as far as Hydra's runtime choices tell.

    ``model.net`` with choices ``{model: restoration, model/net: nafnet_tiny}`` →
    ``<configs>/model/net/nafnet_tiny.yaml (model/net=nafnet_tiny)``: the deepest config group
    that the key lies in, found on Hydra's search path (so a user's own config folder is named as
    it is); the chosen experiment file when it sets something under the key, and command-line
    overrides of the key.
    """
    hydra_cfg = _hydra_runtime()
    if hydra_cfg is None:
        return f"the config of `{key}`"
    choices = dict(hydra_cfg.runtime.choices)
    parts = key.split(".")
    sources = []
    for depth in range(len(parts), 0, -1):
        group = "/".join(parts[:depth])
        if choices.get(group) not in (None, "null"):
            sources.append(f"{_find_config(hydra_cfg, f'{group}/{choices[group]}')} ({group}={choices[group]})")
            break
    else:
        sources.append("configs/train.yaml (or the primary config)")
    experiment = choices.get("experiment")
    if experiment not in (None, "null"):
        path = _find_config(hydra_cfg, f"experiment/{experiment}")
        try:
            sets_key = OmegaConf.select(OmegaConf.load(path), key, default=None) is not None
        except (OSError, ValueError):
            sets_key = True  # cannot tell: name it
        if sets_key:
            sources.append(f"{path} (experiment={experiment})")
    overrides = [o for o in hydra_cfg.overrides.task
                 if _related(o.lstrip("+~").split("=", 1)[0].replace("/", "."), key)]
    if overrides:
        sources.append("the command line (" + " ".join(overrides) + ")")
    return " or ".join(sources)


def _related(a: str, b: str) -> bool:
    """One dotted key is the other or lies under it."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _find_config(hydra_cfg: DictConfig, name: str) -> str:
    """``<group>/<option>`` → the file on Hydra's search path that provides it (``configs/<name>.yaml`` if none)."""
    for source in hydra_cfg.runtime.config_sources:
        if source.schema == "file":
            path = Path(source.path) / f"{name}.yaml"
            if path.is_file():
                return str(path)
    return f"configs/{name}.yaml"


def instantiate_node(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(cfg[key], **kwargs)``, re-raising errors with the config file.

    A wrong ``_target_`` or a missing required value (``???``) then says where to look: for a
    nested node (``model.net`` inside ``model``) the failing node's file, from the ``full_key``
    Hydra reports.
    """
    node = OmegaConf.select(cfg, key, throw_on_missing=False)
    try:
        return instantiate(node, **kwargs)
    except MissingMandatoryValue as err:
        failing = getattr(err, "full_key", None) or key
        raise ConfigError(f"Cannot build `{key}`: `{failing}` is missing, set in {config_source(failing)}: "
                          f"{err}") from err
    except InstantiationException as err:
        match = re.search(r"full_key: (\S+)", str(err))
        failing = match.group(1) if match else key
        raise ConfigError(f"Cannot build `{failing}` from {config_source(failing)}: {err}") from err


GPU_ACCELERATORS = ("gpu", "cuda")
# mixed and half precisions are for GPUs: on a CPU bf16 autocast is slower than fp32, fp16 autocast unsupported
CPU_PRECISION = "32-true"


def fit_trainer_to_device(node: DictConfig, gpu_available: bool | None = None) -> tuple[DictConfig, str | None]:
    """The trainer config ``node`` fitted to this machine, and the one log line saying what changed (None if
    nothing did).

    A config that asks for a GPU (``accelerator: gpu|cuda``, as ``configs/trainer/gpu.yaml`` and the GPU-sized
    experiments) runs on the CPU when no CUDA device is found: ``accelerator: cpu`` and ``32-true`` precision
    (bf16/fp16 autocast gains nothing on a CPU). ``require_gpu: true`` in the node makes that an error instead;
    the key is removed either way (it is not a ``Trainer`` argument).
    """
    # a resolved copy (the run's config stays as it was); a missing value (???) stays for instantiate_node to name
    node = OmegaConf.create(OmegaConf.to_container(node, resolve=True, throw_on_missing=False))
    require_gpu = bool(node.pop("require_gpu", False))
    accelerator = str(node.get("accelerator", "auto")).lower()
    if accelerator not in GPU_ACCELERATORS:
        return node, None
    if gpu_available is None:
        import torch

        gpu_available = torch.cuda.is_available()
    if gpu_available:
        return node, None
    choice = config_choice("trainer")
    asked = (f"trainer={choice} " if choice else "the trainer config ") + \
        f"asked for accelerator={accelerator}, precision={node.get('precision', '32-true')}"
    if require_gpu:
        raise ConfigError(f"No GPU found, and trainer.require_gpu=true ({config_source('trainer')}; {asked}): run on "
                          "a machine with a CUDA GPU, or set trainer.require_gpu=false to run on the CPU")
    node.accelerator = "cpu"
    node.precision = CPU_PRECISION
    return node, (f"No GPU found: running on the CPU with {CPU_PRECISION} precision ({asked}; "
                  "trainer.require_gpu=true makes this an error)")


def instantiate_trainer(cfg: DictConfig, **kwargs: Any) -> Any:
    """The ``trainer`` node instantiated (a ``lightning.Trainer``) on the device found: :func:`fit_trainer_to_device`
    says in one log line when a GPU config runs on the CPU. Lightning's sales tips are kept off the console
    (:func:`restore.lightning.console.hide_lightning_tips`)."""
    from restore.lightning.console import hide_lightning_tips

    hide_lightning_tips()
    node, change = fit_trainer_to_device(cfg.trainer)
    if change:
        log.warning("%s", change)
    return instantiate_node(OmegaConf.create({"trainer": node}), "trainer", **kwargs)


def task_config(cfg: DictConfig) -> DictConfig:
    """The run's config without Hydra's own node (present when composed with ``return_hydra_config``)."""
    if "hydra" not in cfg:
        return cfg
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def compose_config(config_name: str, overrides: list[str], output_dir: str | Path,
                   configs_dir: str | Path | None = None) -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` as ``train.py`` / ``eval.py`` do, with ``output_dir`` as the
    run folder and Hydra's runtime config set, outside a Hydra app (tests, benchmarks)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    configs_dir = Path(configs_dir) if configs_dir is not None else Path(__file__).resolve().parents[2] / "configs"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(configs_dir), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def limit_eval_images(cfg: DictConfig, images: int) -> None:
    """Keep the first ``images`` images of every dataset ``eval.py`` would test (``data.test``, else ``data.val``):
    the test-sized form of an evaluation (model cards, tests)."""
    from omegaconf import open_dict

    with open_dict(cfg):
        sets = cfg.data.get("test") or cfg.data.val
        for dataset in (sets if OmegaConf.is_list(sets) else [sets]):
            dataset.length = images  # indices wrap past the end of a smaller set


def instantiate_group(cfg: DictConfig, key: str) -> list:
    """Instantiate every ``_target_`` entry of a dict group (callbacks, logger); None → []."""
    node = OmegaConf.select(cfg, key)
    if not node:
        return []
    return [instantiate_node(cfg, f"{key}.{name}") for name, sub in node.items() if sub and "_target_" in sub]


def record_run(output_dir: str | Path, cfg: DictConfig) -> None:
    """Keep the exact command line and the resolved config in the run folder (BasicSR habit)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cmd.txt").write_text(" ".join([Path(sys.executable).name] + sys.argv) + "\n")
    (out / "config_resolved.yaml").write_text(OmegaConf.to_yaml(task_config(cfg), resolve=True))


@contextlib.contextmanager
def report_failures(cfg: DictConfig, on_failure: Callable[[], None] | None = None) -> Iterator[None]:
    """End an entry point's failure with one clear last line on stderr, exit status 1.

    ``train.py`` and ``eval.py`` run their task inside it. The line is the error's type and message
    (whitespace folded into one line; a full disk named as "no space left on <folder>"); the full
    traceback goes to the run's log file (``<run>/<task_name>.log``, named on the line before). With
    ``HYDRA_FULL_ERROR=1``, in a sweep (``-m``: the sweeper records the failed trial) and for Ctrl-C,
    the exception propagates as before. ``on_failure`` runs first in every case (closing loggers).
    """
    try:
        yield
    except BaseException as err:
        if on_failure is not None:
            on_failure()
        runtime = _hydra_runtime()
        multirun = runtime is not None and runtime.mode == RunMode.MULTIRUN
        if not isinstance(err, Exception) or os.environ.get("HYDRA_FULL_ERROR") == "1" or multirun:
            raise
        from restore.utils.files import no_space_error

        shown = no_space_error(err, OmegaConf.select(cfg, "paths.output_dir", default=None) or ".", folder=True) or err
        log_file = _log_to_files_only(err)
        where = f"full traceback in {log_file}, or" if log_file else "for the full traceback,"
        text = " ".join(str(shown).split()) or "(no message)"
        sys.stderr.write(f"Failed ({where} rerun with HYDRA_FULL_ERROR=1):\n{type(shown).__name__}: {text}\n")
        raise SystemExit(1) from None


def _log_to_files_only(err: BaseException) -> str | None:
    """Log ``err`` with its traceback to the root logger's file handlers (Hydra's job log), not the console;
    → the first such file, or None."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not files:
        return None
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "Failed: %s", (type(err).__name__,),
                            (type(err), err, err.__traceback__))
    for handler in files:
        handler.handle(record)
    return files[0].baseFilename
