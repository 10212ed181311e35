"""The toolkit's exception classes, in one place.

Each error's message names the culprit (step, value, file) and the fix. The classes are re-exported
where they were first defined (``restore.lightning``, ``restore.lightning.module``), so older
imports keep working.
"""

from __future__ import annotations

__all__ = ["DivergenceError", "NonFiniteLossError"]


# -- training ---------------------------------------------------------------------------------------
class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or Inf; nothing from that step was applied or saved."""


class DivergenceError(NonFiniteLossError):
    """A training loss jumped far above its running median (``DivergenceGuard.factor``); stopped like a NaN loss."""
