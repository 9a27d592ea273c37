"""The freeze guard: one core that watches the user's own training loop (:mod:`.core`), the hooks
it puts on the optimizer (:mod:`.hooks`) and what it says besides the violations (:mod:`.words`).
The framework adapters in :mod:`torchscope.integrations` only map their events onto it."""

from __future__ import annotations

from torchscope._guard.core import FreezeGuard, guard

__all__ = ["FreezeGuard", "guard"]
