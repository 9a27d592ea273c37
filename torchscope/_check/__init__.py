"""``check_step``: run the user's real training step once and prove what was frozen stayed frozen.

One module per job. The parts the step check shares with the audits it runs (the report types,
what is under check, what the optimizer saw, the comparison numerics, grouping by cause, the
reference step's settings) live one floor down, in :mod:`torchscope._checkparts`, so that
``torchscope._optaudit``, ``torchscope._distributed`` and ``torchscope._peft`` use them without
importing this package. Here: the model by qualified name before and after (:mod:`.snapshot`) and
what only that comparison sees (:mod:`.byname`), the causes (:mod:`.causes`), the verdict of one
step (:mod:`.verdict`), the step check (:mod:`.step`), what a forward returned (:mod:`.outputs`)
and the reference fine-tune behind ``check-freeze`` (:mod:`.reference`).

This module re-exports, lazily, so that ``import torchscope._check.snapshot`` does not pay for the
step check.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it (the shared parts live below, in torchscope._checkparts)
_EXPORTS: dict[str, str] = {
    "DEFAULT_STEP": "torchscope._checkparts.config",
    "FREEZE_FIX": "torchscope._checkparts.grouping",
    "KINDS": "torchscope._checkparts.report",
    "NOTHING_FROZEN": "torchscope._checkparts.report",
    "OPTIMIZER_KINDS": "torchscope._checkparts.report",
    "OPTIMIZERS": "torchscope._checkparts.config",
    "ReferenceStep": "torchscope._checkparts.config",
    "Mode": "torchscope._check.step",
    "StepCheck": "torchscope._checkparts.report",
    "StepReport": "torchscope._checkparts.report",
    "Violation": "torchscope._checkparts.report",
    "ViolationGroup": "torchscope._checkparts.report",
    "check_freeze": "torchscope._check.reference",
    "check_step": "torchscope._check.step",
    "collect_tensors": "torchscope._checkparts.plan",
    "covering_patterns": "torchscope._checkparts.grouping",
    "describe_output": "torchscope._check.outputs",
    "expected_frozen_names": "torchscope._check.reference",
    "group_violations": "torchscope._checkparts.grouping",
    "json_float": "torchscope._checkparts.report",
    "output_tensors": "torchscope._check.outputs",
    "max_abs_diff": "torchscope._checkparts.numerics",
    "max_abs_diffs": "torchscope._checkparts.numerics",
    "synthetic_loss": "torchscope._check.reference",
    "tensor_counts": "torchscope._check.reference",
    "BY_NAME_KINDS": "torchscope._check.byname",
    "NamedSnapshot": "torchscope._check.snapshot",
    "NameChange": "torchscope._check.snapshot",
    "SnapshotDiff": "torchscope._check.snapshot",
    "by_name_violations": "torchscope._check.byname",
    "take_snapshot": "torchscope._check.snapshot",
    "unused_caveat": "torchscope._checkparts.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'torchscope._check' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from torchscope._check.byname import BY_NAME_KINDS, by_name_violations  # noqa: F401
    from torchscope._check.outputs import describe_output, output_tensors  # noqa: F401
    from torchscope._check.reference import (  # noqa: F401  # noqa: F401
        check_freeze,
        expected_frozen_names,
        synthetic_loss,
        tensor_counts,
    )
    from torchscope._check.snapshot import NameChange, NamedSnapshot, SnapshotDiff, take_snapshot  # noqa: F401
    from torchscope._check.step import Mode, check_step  # noqa: F401
    from torchscope._checkparts.config import DEFAULT_STEP, OPTIMIZERS, ReferenceStep  # noqa: F401
    from torchscope._checkparts.grouping import FREEZE_FIX, covering_patterns, group_violations  # noqa: F401
    from torchscope._checkparts.numerics import max_abs_diff, max_abs_diffs  # noqa: F401
    from torchscope._checkparts.plan import collect_tensors  # noqa: F401
    from torchscope._checkparts.report import (  # noqa: F401  # noqa: F401
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
