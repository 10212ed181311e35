"""The toolkit's exception and warning classes, in one place.

Each error's message names the culprit (file, key, tensor, shape, step, value) and the fix. The classes are
re-exported where they were first defined (``restore.checkpoint``, ``restore.model_zoo``,
``restore.inference``, ``restore.lightning``, ``restore.lightning.module``, ``restore.utils.config``,
``restore.export``, ``restore.models.factory``, ``restore.utils.files``), so older imports keep working.
"""

from __future__ import annotations

__all__ = ["CheckpointReadError", "ConfigError", "ConfigsNotFoundError", "DamagedFileError", "DivergenceError",
           "ExportMismatchError", "MissingNetConfigError", "NoSpaceError", "NonFiniteLossError",
           "NonFiniteOutputError", "NonFiniteWeightsError", "UnknownArchitectureError", "UnknownModelError",
           "UnsafeCheckpointError", "UnsupportedExportError", "UnverifiedWeightsWarning",
           "WeightsSizeError", "WriteError"]


# -- weights files ---------------------------------------------------------------------------------
class UnsafeCheckpointError(ValueError):
    """A stored network config names something other than a trusted network constructor."""


class NonFiniteWeightsError(ValueError):
    """A weights file holds NaN or Inf values (a diverged run, or a corrupted file)."""


class MissingNetConfigError(ValueError):
    """The file stores no network config: the caller must give the network (``net=``)."""


class DamagedFileError(OSError):
    """A file the toolkit wrote was modified or damaged after it was written (its weights digest does
    not match, or it no longer parses); the message names the file and what to do."""


class WeightsSizeError(ValueError):
    """A weights file declares more bytes than the cap (``max_bytes``, ``RESTORE_MAX_WEIGHTS_BYTES``)
    or than the network its stored config builds; refused before anything of that size is allocated."""


class UnverifiedWeightsWarning(UserWarning):
    """A weights file stores no digest (written by another tool, or before digests were stored), so
    damage to it cannot be detected; it loads anyway."""


class CheckpointReadError(RuntimeError):
    """A checkpoint file exists but cannot be read (empty, truncated or not a checkpoint); names the file."""


class UnknownModelError(ValueError):
    """``--model`` / ``resolve_model`` got neither a model file nor the name of a shipped model."""


# -- running networks -------------------------------------------------------------------------------
class NonFiniteOutputError(FloatingPointError, RuntimeError):
    """A network produced NaN or Inf (diverged or corrupted weights, overflow): no image or metric is given.

    Both a ``FloatingPointError`` (as the training-loss errors) and a ``RuntimeError`` (what
    :func:`restore.restore_image` raised before the two definitions became this one), so either
    ``except`` catches it.
    """


# -- configs ----------------------------------------------------------------------------------------
class ConfigError(RuntimeError):
    """A config node could not be built, or does not fit the rest of the run; the message names the config to fix."""


# -- training ---------------------------------------------------------------------------------------
class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or Inf; nothing from that step was applied or saved."""


class DivergenceError(NonFiniteLossError):
    """A training loss jumped far above its running median (``DivergenceGuard.factor``); stopped like a NaN loss."""


# -- architectures by name --------------------------------------------------------------------------
class ConfigsNotFoundError(FileNotFoundError):
    """No ``configs/model/net/`` folder was found: the package runs without the repository's configs."""


class UnknownArchitectureError(ValueError):
    """No ``configs/model/net/<name>.yaml``, or a setting the architecture does not have; lists close matches."""


# -- exports ----------------------------------------------------------------------------------------
class ExportMismatchError(RuntimeError):
    """The exported graph's output differs from the PyTorch module's (it baked in a shape or a branch)."""


class UnsupportedExportError(ValueError):
    """The network or an option cannot be exported to this format (the message says which format can)."""


# -- writing files ----------------------------------------------------------------------------------
class WriteError(OSError):
    """A file cannot be written there; the message names the path, why, and what to do."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class NoSpaceError(WriteError):
    """The disk (or quota) holding a file being written is full; names the folder."""
