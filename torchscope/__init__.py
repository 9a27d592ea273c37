"""torchscope: look inside any ``nn.Module`` and prove the invariants of a fine-tune.

The public API is re-exported here lazily, so ``import torchscope`` (and the pytest plugin) does not
import torch until a name that needs it is used.

>>> import torchscope
>>> torchscope.__version__
'0.1.0'
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> private module that defines it
_EXPORTS: dict[str, str] = {
    "ActivationReport": "torchscope._record",
    "BenchResult": "torchscope._bench.schema",
    "DiffReport": "torchscope._diff",
    "ForwardError": "torchscope.errors",
    "FreezeCheckError": "torchscope.errors",
    "FreezeGuard": "torchscope._guard.core",
    "GradReport": "torchscope._grads",
    "MemoryReport": "torchscope._memory.schema",
    "ModuleTree": "torchscope._tree",
    "ParamStats": "torchscope._stats",
    "PatternError": "torchscope.errors",
    "Recorder": "torchscope._record",
    "ReportData": "torchscope._report",
    "SpecError": "torchscope.errors",
    "StepCheck": "torchscope._checkparts.report",
    "Summary": "torchscope._summary",
    "TorchscopeError": "torchscope.errors",
    "Violation": "torchscope._checkparts.report",
    "audit_optimizer": "torchscope._optaudit",
    "bench": "torchscope._bench.run",
    "capture_state": "torchscope._state",
    "check_freeze": "torchscope._check.reference",
    "check_step": "torchscope._check.step",
    "collect_report": "torchscope._report",
    "diff_checkpoints": "torchscope._diff",
    "estimate_memory": "torchscope._memory.estimate",
    "find_head": "torchscope._freeze",
    "fingerprint": "torchscope._fingerprint",
    "freeze": "torchscope._freeze",
    "freeze_backbone": "torchscope._freeze",
    "grad_report": "torchscope._grads",
    "guard": "torchscope._guard.core",
    "load_model": "torchscope._loader",
    "param_stats": "torchscope._stats",
    "preserved": "torchscope._state",
    "record": "torchscope._record",
    "replace_head": "torchscope._freeze",
    "summary": "torchscope._summary",
    "tree": "torchscope._tree",
    "unfreeze": "torchscope._freeze",
    "update_ratio": "torchscope._stats",
    "watch": "torchscope._watch",
}

__all__ = sorted(["__version__", *_EXPORTS])

# public submodules, imported on first use as numpy.linalg or torch.nn: ``import torchscope`` then
# ``torchscope.testing.assert_frozen(...)``. Not in __all__: ``from torchscope import *`` would
# import them (torch; hypothesis for strategies).
_SUBMODULES = ("errors", "strategies", "testing")


# old public name -> (new name, the release it goes in): still works, with one DeprecationWarning line
_RENAMED: dict[str, tuple[str, str]] = {"StepReport": ("StepCheck", "0.2")}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _RENAMED:
        import warnings

        new, release = _RENAMED[name]
        warnings.warn(
            f"torchscope.{name} is now torchscope.{new} (what check_step returns is a check, not the report page); "
            f"the old name goes in {release}",
            DeprecationWarning,
            stacklevel=2,
        )
        return __getattr__(new)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'torchscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    # Say where users import it from (reprs, tracebacks, pickles, help()): torchscope.tree, not
    # torchscope._tree.tree. Names of a public module (torchscope.errors) keep their own.
    own = getattr(value, "__module__", "")
    if isinstance(own, str) and own.startswith(f"{__name__}._") and callable(value):
        value.__module__ = __name__
        # doctest skips an object whose __module__ is another module's: list it in its defining
        # module's __test__, so its examples still run there, once, with that module's globals
        vars(sys.modules[own]).setdefault("__test__", {})[name] = value
    # Not cached in globals(): doctest would then collect these objects a second time from this
    # module (their docstrings are tested where they are defined).
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, *_SUBMODULES])


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from torchscope import errors, strategies, testing
    from torchscope._bench.run import bench
    from torchscope._bench.schema import BenchResult
    from torchscope._check.reference import check_freeze
    from torchscope._check.step import check_step
    from torchscope._checkparts.report import StepCheck, StepReport, Violation
    from torchscope._diff import DiffReport, diff_checkpoints
    from torchscope._fingerprint import fingerprint
    from torchscope._freeze import find_head, freeze, freeze_backbone, replace_head, unfreeze
    from torchscope._grads import GradReport, grad_report
    from torchscope._guard.core import FreezeGuard, guard
    from torchscope._loader import load_model
    from torchscope._memory.estimate import estimate_memory
    from torchscope._memory.schema import MemoryReport
    from torchscope._optaudit import audit_optimizer
    from torchscope._record import ActivationReport, Recorder, record
    from torchscope._report import ReportData, collect_report
    from torchscope._state import capture_state, preserved
    from torchscope._stats import ParamStats, param_stats, update_ratio
    from torchscope._summary import Summary, summary
    from torchscope._tree import ModuleTree, tree
    from torchscope._watch import watch
    from torchscope.errors import ForwardError, FreezeCheckError, PatternError, SpecError, TorchscopeError
