"""``check_step``: run the user's real training step once and prove what was frozen stayed frozen.

One module per job: the report types (:mod:`.report`), what is under check (:mod:`.plan`), the
model by qualified name before and after (:mod:`.snapshot`) and what only that comparison sees
(:mod:`.byname`), what the
optimizer saw (:mod:`.probe`), the comparison numerics (:mod:`.numerics`), the causes
(:mod:`.causes`), grouping violations by cause (:mod:`.grouping`), the step check (:mod:`.step`),
what a forward returned (:mod:`.outputs`), the reference step's settings (:mod:`.config`) and the
reference fine-tune behind ``check-freeze`` (:mod:`.reference`).

This module only re-exports, and lazily: ``torchscope._optaudit`` and ``torchscope._distributed``
import the report and plan modules, and the step check imports them; an eager ``__init__`` would
close that into a circle (importing ``torchscope._check.plan`` runs this file first).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module of this package that defines it
_EXPORTS: dict[str, str] = {
    "DEFAULT_STEP": "config",
    "FREEZE_FIX": "grouping",
    "KINDS": "report",
    "NOTHING_FROZEN": "report",
    "OPTIMIZER_KINDS": "report",
    "OPTIMIZERS": "config",
    "ReferenceStep": "config",
    "Mode": "step",
    "StepCheck": "report",
    "StepReport": "report",
    "Violation": "report",
    "ViolationGroup": "report",
    "check_freeze": "reference",
    "check_step": "step",
    "collect_tensors": "plan",
    "covering_patterns": "grouping",
    "describe_output": "outputs",
    "expected_frozen_names": "reference",
    "group_violations": "grouping",
    "json_float": "report",
    "output_tensors": "outputs",
    "max_abs_diff": "numerics",
    "max_abs_diffs": "numerics",
    "synthetic_loss": "reference",
    "tensor_counts": "reference",
    "BY_NAME_KINDS": "byname",
    "NamedSnapshot": "snapshot",
    "NameChange": "snapshot",
    "SnapshotDiff": "snapshot",
    "by_name_violations": "byname",
    "take_snapshot": "snapshot",
    "unused_caveat": "report",
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
    from torchscope._check.byname import BY_NAME_KINDS, by_name_violations  # noqa: F401
    from torchscope._check.config import DEFAULT_STEP, OPTIMIZERS, ReferenceStep  # noqa: F401
    from torchscope._check.grouping import FREEZE_FIX, covering_patterns, group_violations  # noqa: F401
    from torchscope._check.numerics import max_abs_diff, max_abs_diffs  # noqa: F401
    from torchscope._check.outputs import describe_output, output_tensors  # noqa: F401
    from torchscope._check.plan import collect_tensors  # noqa: F401
    from torchscope._check.reference import (  # noqa: F401  # noqa: F401
        check_freeze,
        expected_frozen_names,
        synthetic_loss,
        tensor_counts,
    )
    from torchscope._check.report import (  # noqa: F401  # noqa: F401
        KINDS,
        NOTHING_FROZEN,
        OPTIMIZER_KINDS,
        StepCheck,
        StepReport,
        Violation,
        ViolationGroup,
        json_float,
        unused_caveat,
    )
    from torchscope._check.snapshot import NameChange, NamedSnapshot, SnapshotDiff, take_snapshot  # noqa: F401
    from torchscope._check.step import Mode, check_step  # noqa: F401
