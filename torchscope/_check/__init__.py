"""``check_step``: run the user's real training step once and prove what was frozen stayed frozen.

One module per job: the report types (:mod:`.report`), what is under check (:mod:`.plan`), what the
optimizer saw (:mod:`.probe`), the comparison numerics (:mod:`.numerics`), the causes
(:mod:`.causes`), the step check (:mod:`.step`) and the reference fine-tune behind ``check-freeze``
(:mod:`.reference`).

This module only re-exports, and lazily: ``torchscope._optaudit`` and ``torchscope._distributed``
import the report and plan modules, and the step check imports them; an eager ``__init__`` would
close that into a circle (importing ``torchscope._check.plan`` runs this file first).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module of this package that defines it
_EXPORTS: dict[str, str] = {
    "KINDS": "report",
    "OPTIMIZER_KINDS": "report",
    "OPTIMIZERS": "reference",
    "Mode": "step",
    "StepReport": "report",
    "Violation": "report",
    "check_freeze": "reference",
    "check_step": "step",
    "collect_tensors": "plan",
    "expected_frozen_names": "reference",
    "format_bytes": "report",
    "json_float": "report",
    "max_abs_diff": "numerics",
    "max_abs_diffs": "numerics",
    "synthetic_loss": "reference",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'torchscope._check' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"torchscope._check.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from torchscope._check.numerics import max_abs_diff, max_abs_diffs  # noqa: F401
    from torchscope._check.plan import collect_tensors  # noqa: F401
    from torchscope._check.reference import OPTIMIZERS, check_freeze, expected_frozen_names, synthetic_loss  # noqa: F401
    from torchscope._check.report import (  # noqa: F401  # noqa: F401
        KINDS,
        OPTIMIZER_KINDS,
        StepReport,
        Violation,
        format_bytes,
        json_float,
    )
    from torchscope._check.step import Mode, check_step  # noqa: F401
