"""summary(): every module call's input and output shapes, parameters and exact multiply-accumulates.

``data`` holds the frozen results, ``calls`` the hooks that know which module is running (and the
message of a failed forward), ``collect`` the forward pass under the MAC counter, ``graph`` the torch.export and
TorchScript graphs, ``sizes`` torchinfo's memory figures, ``show`` torchinfo's ``verbose`` rule,
``api`` the public function with torchinfo's keywords.
"""

from torchscope._summary.api import summary, to_dtype
from torchscope._summary.calls import Call, CallTracker, run_forward
from torchscope._summary.collect import Mode, SummaryForwardError, collect_summary, parameter_summary
from torchscope._summary.data import DisplayOptions, ModuleRow, Summary, TensorSpec, shapes_text, specs

__all__ = [
    "Call",
    "CallTracker",
    "DisplayOptions",
    "Mode",
    "ModuleRow",
    "Summary",
    "SummaryForwardError",
    "TensorSpec",
    "collect_summary",
    "parameter_summary",
    "run_forward",
    "shapes_text",
    "specs",
    "summary",
    "to_dtype",
]
