"""torchscope.summary as a drop-in for torchinfo.summary: its keywords with its meaning, the same
parameters and shapes, and MACs that differ only where we mean to (torchinfo adds one per bias add
and counts norm layers; we count multiply-accumulates)."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest
import torch
import torchinfo
import torchvision
from rendering import text
from torch import nn
from zoo import build, build_recurrent

import torchscope
from torchscope import SpecError, TorchscopeError
from torchscope.render.summary import render_summary

COMPARED = {
    "resnet18": lambda: (torchvision.models.resnet18(), (1, 3, 64, 64)),
    "mobilenet_v2": lambda: (torchvision.models.mobilenet_v2(), (2, 3, 64, 64)),
    "small_cnn": lambda: (build("small_cnn")[0], (4, 3, 8, 8)),
    "stacked": lambda: (build("stacked")[0], (2, 8)),
}


def _bias_adds(module: nn.Module, out_shape: tuple[int, ...]) -> int:
    # what torchinfo adds to a conv or linear layer's count: one add per output element with a bias
    if getattr(module, "bias", None) is None:
        return 0
    return math.prod(out_shape)


@pytest.mark.parametrize("name", sorted(COMPARED))
def test_params_shapes_and_macs_agree_with_torchinfo(name: str) -> None:
    model, size = COMPARED[name]()
    theirs = torchinfo.summary(model, input_size=size, verbose=0)
    ours = torchscope.summary(model, input_size=size)
    assert ours.total_params == theirs.total_params
    assert ours.trainable_params == theirs.trainable_params
    # torchinfo's summary_list and our rows are the same module calls in the same order
    assert [r.type for r in ours.rows] == [layer.class_name for layer in theirs.summary_list]
    assert [list(r.outputs[0].shape) for r in ours.rows if len(r.outputs) == 1] == [
        layer.output_size for layer, r in zip(theirs.summary_list, ours.rows, strict=True) if len(r.outputs) == 1
    ]
    modules = dict(model.named_modules())
    compared = 0
    for row, layer in zip(ours.rows, theirs.summary_list, strict=True):
        if row.type in ("Conv2d", "Linear"):
            bias = _bias_adds(modules[row.name], row.outputs[0].shape)
            assert row.mult_adds is not None and row.mult_adds + bias == layer.macs, row.name
            compared += 1
    assert compared >= 3


def test_an_lstm_agrees_with_torchinfo() -> None:
    model, tokens = build_recurrent("lstm_lm")
    theirs = torchinfo.summary(model, input_data=[tokens], verbose=0)
    ours = torchscope.summary(model, input_data=[tokens])
    assert ours.total_params == theirs.total_params
    assert [list(r.outputs[0].shape) for r in ours.rows] == [layer.output_size for layer in theirs.summary_list]
    # torchinfo counts the LSTM's weights once per timestep of the batch too
    lstm = next(layer for layer in theirs.summary_list if layer.class_name == "LSTM")
    rnn = next(r for r in ours.rows if r.name == "rnn")
    biases = sum(p.numel() for n, p in model.rnn.named_parameters() if "bias" in n)
    assert rnn.mult_adds is not None and rnn.mult_adds + 35 * 4 * biases == lstm.macs


def test_the_same_call_works_with_both() -> None:
    model, size = COMPARED["small_cnn"]()
    kwargs = dict(
        input_size=size, col_names=("input_size", "output_size", "num_params", "params_percent", "kernel_size",
                                    "mult_adds", "trainable"),
        col_width=16, depth=1, row_settings=("depth", "var_names"), mode="eval", device="cpu", verbose=0,
    )  # fmt: skip
    theirs = torchinfo.summary(model, **kwargs)
    ours = torchscope.summary(model, **kwargs)
    assert ours.total_params == theirs.total_params
    out = str(ours)
    header = out.splitlines()[0]
    for column in ("Input shape", "Output shape", "Params", "Params %", "Kernel", "Mult-adds", "Trainable"):
        assert column in header
    assert "backbone (Sequential): 1-1" in out and "fc (Linear): 1-2" in out
    assert "0 (Conv2d)" not in out  # depth=1
    assert "100.00%" in out and "True" in out


def test_input_size_with_batch_dim_and_dtypes() -> None:
    model, _ = build("small_cnn")
    s = torchscope.summary(model, input_size=(3, 8, 8), batch_dim=0)
    assert s.inputs[0].shape == (1, 3, 8, 8)
    emb = build("tied")[0]
    for dtype in (torch.long, torch.LongTensor, torch.cuda.LongTensor, "int64"):
        s = torchscope.summary(emb, input_size=(2, 5), dtypes=[dtype])
        assert s.inputs[0].dtype == "int64" and s.outputs[0].shape == (2, 5, 20)
    s = torchscope.summary(nn.Linear(3, 2), input_size=(2, 3), dtypes=[torch.FloatTensor])
    assert s.inputs[0].dtype == "float32"


@pytest.mark.parametrize(
    ("dtypes", "message"),
    [
        ([5], r"^dtypes has 5, which is not a dtype; use e\.g\. torch\.float32, 'int64' or torch\.LongTensor$"),
        ([nn.Linear], r"^dtypes has <class 'torch\.nn\.modules\.linear\.Linear'>, which is not a dtype"),
        (["float8"], r"^unknown dtype 'float8'"),
    ],
)
def test_a_bad_dtypes_value_is_our_error(dtypes: list, message: str) -> None:
    with pytest.raises(TorchscopeError, match=message) as info:
        torchscope.summary(nn.Linear(3, 2), input_size=(2, 3), dtypes=dtypes)
    assert "\n" not in str(info.value)


def test_input_data_list_is_positional_arguments() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(5, 4)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(y)

    x, y = torch.randn(2, 3), torch.randn(2, 5)
    ours = torchscope.summary(Two(), input_data=[x, y])
    theirs = torchinfo.summary(Two(), input_data=[x, y], verbose=0)
    assert [t.shape for t in ours.inputs] == [(2, 3), (2, 5)]
    assert ours.total_mult_adds == 2 * 3 * 4 + 2 * 5 * 4
    assert ours.total_params == theirs.total_params


def test_no_input_gives_the_parameter_table_without_a_forward_pass() -> None:
    calls = []
    model = torchvision.models.resnet18()
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    ours = torchscope.summary(model)
    theirs = torchinfo.summary(model, verbose=0)
    assert calls == [] and ours.total_mult_adds is None and not ours.forward_ran
    assert ours.total_params == theirs.total_params == 11_689_512
    assert [r.name for r in ours.rows][:3] == ["", "conv1", "bn1"]
    out = text(render_summary(ours))
    assert out.splitlines()[0].split() == ["Layer", "(type)", "Params"]
    assert "Mult-adds" not in out and "no input given: parameters only" in out
    assert ours.to_dict()["total_mult_adds"] is None


@pytest.mark.parametrize("size", [(), [()], [(), (3,)]])
def test_zero_dimensional_inputs(size) -> None:
    class Scalars(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, t: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
            return self.w * t if v is None else self.w * t + v

    s = torchscope.summary(Scalars(), input_size=size)
    assert s.inputs[0].shape == () and s.outputs[0].shape == (3,)


def test_mode_same_keeps_the_models_mode() -> None:
    model, _ = build("aux_head")
    model.train()
    assert torchscope.summary(model, input_size=(4, 8), mode="same").mode == "train"
    model.eval()
    assert torchscope.summary(model, input_size=(4, 8), mode="same").mode == "eval"
    assert torchscope.summary(model, input_size=(4, 8)).mode == "eval"  # torchinfo's default too


def test_verbose_follows_torchinfo_rule(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # not interactive (a script, pytest): verbose=None prints, as torchinfo
    monkeypatch.delattr("sys.ps1", raising=False)
    s = torchscope.summary(nn.Linear(3, 2), input_size=(2, 3))
    assert capsys.readouterr().out == str(s) + "\n"
    torchscope.summary(nn.Linear(3, 2), input_size=(2, 3), verbose=0)
    assert capsys.readouterr().out == ""
    # interactive (the REPL): quiet unless verbose is given
    monkeypatch.setattr("sys.ps1", ">>> ", raising=False)
    torchscope.summary(nn.Linear(3, 2), input_size=(2, 3))
    assert capsys.readouterr().out == ""
    torchscope.summary(nn.Linear(3, 2), input_size=(2, 3), verbose=1)
    assert "FLOPs: 24 (mult-adds: 12)" in capsys.readouterr().out


def test_cache_forward_pass_reuses_the_collected_summary() -> None:
    calls = []
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    first = torchscope.summary(model, input_size=(2, 3), cache_forward_pass=True, compare_modes=False)
    again = torchscope.summary(model, input_size=(2, 3), cache_forward_pass=True, compare_modes=False, depth=0)
    assert len(calls) == 1 and again == first
    assert "0 (Linear)" in str(first) and "0 (Linear)" not in str(again)
    torchscope.summary(model, input_size=(5, 3), cache_forward_pass=True, compare_modes=False)
    assert len(calls) == 2  # another input shape is another summary


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"col_names": ["output_size", "flops"]}, "col_names has 'flops'; use any of input_size, output_size"),
        ({"row_settings": ["tree"]}, "row_settings has 'tree'; use any of depth, var_names"),
        ({"col_width": 0}, "col_width=0 must be a positive int"),
        ({"depth": -1}, "depth=-1 must be an int >= 0"),
        ({"verbose": 3}, "verbose=3 must be 0, 1 or 2"),
        ({"batch_dim": 9}, r"batch_dim=9 is out of range for input_size \(2, 3\)"),
        ({"mode": "test"}, "mode='test' must be 'eval', 'train' or 'same'"),
    ],
)
def test_bad_torchinfo_keywords(kwargs: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        torchscope.summary(nn.Linear(3, 2), input_size=(2, 3), **kwargs)


# the totals torchinfo prints, in its words: the same lines in both outputs
TORCHINFO_TOTALS = (
    "Total params",
    "Trainable params",
    "Non-trainable params",
    "Input size (MB)",
    "Forward/backward pass size (MB)",
    "Params size (MB)",
    "Estimated Total Size (MB)",
)


def _totals(out: str) -> dict[str, str]:
    lines = {}
    for line in out.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in TORCHINFO_TOTALS:
            lines[key] = value
    return lines


def _partly_frozen() -> tuple[nn.Module, tuple[int, ...]]:
    model = torchvision.models.resnet18()
    model.layer1.requires_grad_(False)
    return model, (2, 3, 64, 64)


TOTALS_COMPARED = {**COMPARED, "resnet18_partly_frozen": _partly_frozen}


@pytest.mark.parametrize("name", sorted(TOTALS_COMPARED))
def test_the_totals_are_torchinfos_numbers_in_its_words(name: str) -> None:
    model, size = TOTALS_COMPARED[name]()
    theirs = torchinfo.summary(model, input_size=size, verbose=0)
    ours = torchscope.summary(model, input_size=size, verbose=0)
    for field in ("total_params", "trainable_params", "total_input", "total_output_bytes", "total_param_bytes"):
        assert getattr(ours, field) == getattr(theirs, field), field
    mine, torchinfos = _totals(str(ours)), _totals(str(theirs))
    assert mine == torchinfos and len(mine) == len(TORCHINFO_TOTALS)
    # torchinfo 1.8.0 prints "(Units.MEGABYTES)" on Python 3.11+; we print the unit it means
    unit = re.search(r"^Total mult-adds \(([MGT])\): [\d,]+(\.\d\d)?$", str(ours), re.MULTILINE)
    assert unit is not None
    # our own figures come after torchinfo's
    out = str(ours).splitlines()
    assert out.index(f"Frozen params: {ours.total_params - ours.trainable_params:,}") > out.index(
        f"Estimated Total Size (MB): {torchinfos['Estimated Total Size (MB)']}"
    )


def test_an_lstm_has_torchinfos_totals() -> None:
    model, tokens = build_recurrent("lstm_lm")
    theirs = torchinfo.summary(model, input_data=[tokens], verbose=0)
    ours = torchscope.summary(model, input_data=[tokens], verbose=0)
    assert (ours.total_input, ours.total_output_bytes, ours.total_param_bytes) == (
        theirs.total_input, theirs.total_output_bytes, theirs.total_param_bytes,
    )  # fmt: skip
    assert _totals(str(ours)) == _totals(str(theirs))


def test_a_tied_weight_counts_once_where_torchinfo_counts_it_twice() -> None:
    model, idx = build("tied")
    theirs = torchinfo.summary(model, input_data=[idx], verbose=0)
    ours = torchscope.summary(model, input_data=[idx], verbose=0)
    unique = {id(p): p for p in model.parameters()}.values()
    assert ours.total_params == sum(p.numel() for p in unique) == theirs.total_params - model.out.weight.numel()
    assert ours.total_param_bytes == sum(p.numel() * p.element_size() for p in unique)


def test_the_result_has_torchinfos_model_statistics_fields() -> None:
    model, size = COMPARED["small_cnn"]()
    theirs = torchinfo.summary(model, input_size=size, depth=2, verbose=0)
    ours = torchscope.summary(model, input_size=size, depth=2, verbose=0)
    assert [layer.class_name for layer in ours.summary_list] == [layer.class_name for layer in theirs.summary_list]
    assert [layer.output_size for layer in ours.summary_list] == [layer.output_size for layer in theirs.summary_list]
    assert [layer.num_params for layer in ours.summary_list][1:] == [
        layer.num_params for layer in theirs.summary_list
    ][1:]
    assert ours.formatting.max_depth == theirs.formatting.max_depth == 2
    assert ours.to_megabytes(ours.total_input) == theirs.to_megabytes(theirs.total_input)
    assert ours.float_to_megabytes(ours.total_params) == theirs.float_to_megabytes(theirs.total_params)
    assert isinstance(ours.total_mult_adds, int) and ours.total_mult_adds > 0


def test_verbose_2_adds_weight_rows_and_keeps_the_depth(capsys: pytest.CaptureFixture[str]) -> None:
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), nn.Flatten(), nn.Linear(144, 2))
    torchscope.summary(model, input_size=(1, 3, 8, 8), verbose=2, depth=1)
    out = capsys.readouterr().out
    assert "├─weight: [2, 144]" in out and "└─bias: [2]" in out and "288" in out
    assert "(Conv2d)" not in out  # depth=1 still holds: verbose chooses detail, not depth
    torchscope.summary(model, input_size=(1, 3, 8, 8), verbose=1)
    out = capsys.readouterr().out
    assert "(Conv2d)" in out and "weight:" not in out


def _flags(model: nn.Module) -> tuple[list, list, dict]:
    return (
        [(n, m.training) for n, m in model.named_modules()],
        [(n, p.requires_grad, p.device) for n, p in model.named_parameters()],
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def test_device_meta_never_touches_the_model() -> None:
    model = torchvision.models.resnet18()
    model.eval()
    model.layer2.train()  # a mix of modes: every module's flag comes back, not only the root's
    model.fc.requires_grad_(False)
    modes, grads, state = _flags(model)
    s = torchscope.summary(model, input_size=(2, 3, 64, 64), device="meta", mode="train", verbose=0)
    on_cpu = torchscope.summary(model, input_size=(2, 3, 64, 64), mode="train", verbose=0)
    assert (s.total_mult_adds, s.total_params, s.trainable_params) == (
        on_cpu.total_mult_adds, on_cpu.total_params, on_cpu.trainable_params,
    )  # fmt: skip
    after_modes, after_grads, after_state = _flags(model)
    assert after_modes == modes and after_grads == grads
    assert after_state.keys() == state.keys() and all(torch.equal(state[k], after_state[k]) for k in state)
    # torchinfo moves the model itself and leaves it on the device (its issues #227, #287)
    torchinfo.summary(model, input_size=(2, 3, 64, 64), device="meta", verbose=0)
    assert next(model.parameters()).is_meta


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_one_clear_error() -> None:
    model = nn.Linear(3, 2)
    with pytest.raises(TorchscopeError, match=r"^device 'cuda' is not available on this machine \(no CUDA\); use cpu or meta$"):
        torchscope.summary(model, input_size=(2, 3), device="cuda")
    assert next(model.parameters()).device.type == "cpu"


BIG_META = """
import resource, torch, torchscope
from torch import nn
layers = [nn.Linear(8192, 8192, bias=False, dtype=torch.bfloat16, device="meta") for _ in range(16)]
model = nn.Sequential(*layers).to_empty(device="cpu")  # 1.07 B parameters, 2.1 GB, no init cost
with torch.no_grad():
    for p in model.parameters():
        p.fill_(0.5)  # touched: the pages are really there
weights = sum(p.numel() * p.element_size() for p in model.parameters())
torchscope.summary(nn.Linear(2, 2), input_size=(1, 2), device="meta", verbose=0)  # the imports
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
s = torchscope.summary(model, input_size=(1, 8192), device="meta", verbose=0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(s.total_params, weights, peak, next(model.parameters()).device, float(model[3].weight[0, 0]))
"""


@pytest.mark.slow  # a fresh interpreter with a 2 GB model
def test_device_meta_on_a_billion_parameter_cpu_model_copies_no_weights() -> None:
    run = subprocess.run([sys.executable, "-c", BIG_META], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    params, weights, peak, device, value = run.stdout.split()
    assert int(params) == 16 * 8192 * 8192 and device == "cpu" and float(value) == 0.5
    assert int(peak) < 0.05 * int(weights), f"peak RSS grew by {int(peak) / 1e6:.0f} MB"


NOTEBOOK_CELLS = [
    "import torchscope\nfrom torch import nn\nmodel = nn.Sequential(nn.Linear(8, 4), nn.ReLU())",
    "torchscope.summary(model, input_size=(2, 8))",  # interactive: quiet, the cell's value shows it
    "torchscope.summary(model, input_size=(2, 8), verbose=1)",  # printed: not a second time
    "s = torchscope.summary(model, input_size=(2, 8), verbose=1)",  # no value shown: printed
    "s = torchscope.summary(model, input_size=(2, 8), verbose=1)\nprint('after')\n1 + 1",  # another value
]


@pytest.mark.slow  # starts a Jupyter kernel
def test_in_a_notebook_the_table_shows_once() -> None:
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' (nbformat, nbclient, ipykernel)")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]'")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    printed = [
        "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream").count("Total params: 36")
        for cell in nb.cells
    ]
    values = [[o for o in cell.outputs if o["output_type"] == "execute_result"] for cell in nb.cells]
    assert printed == [0, 0, 0, 1, 1]
    assert [len(v) for v in values] == [0, 1, 1, 0, 1] and values[4][0]["data"]["text/plain"] == "2"
    # Rich renders to a notebook as display_data of its own: none may leak from the text renderer
    assert not any(o["output_type"] == "display_data" for cell in nb.cells[3:] for o in cell.outputs)


def _branches_by_class_source(cls: type) -> bool:
    # the decision as it was made before: the regex over each class's whole source
    import inspect

    from torchscope._summary.branches import BRANCH

    for klass in cls.__mro__:
        if klass is object or klass.__module__.startswith(("torch.nn.", "torch.jit", "builtins")):
            continue
        try:
            if BRANCH.search(inspect.getsource(klass)):
                return True
        except (OSError, TypeError):
            return True
    return False


def test_the_train_mode_check_reads_code_objects_and_decides_as_the_source() -> None:
    from torchscope._summary.branches import class_branches

    classes = sorted(
        {v for v in vars(torchvision.models).values() if isinstance(v, type) and issubclass(v, nn.Module)}
        | {v for m in (torchvision.models.inception, torchvision.models.googlenet, torchvision.models.resnet)
           for v in vars(m).values() if isinstance(v, type) and issubclass(v, nn.Module)},
        key=lambda c: (c.__module__, c.__qualname__),
    )  # fmt: skip
    decided = {c.__qualname__: class_branches(c) for c in classes}
    assert decided == {c.__qualname__: _branches_by_class_source(c) for c in classes}
    assert decided["Inception3"] and decided["GoogLeNet"] and not decided["ResNet"]

    class Commented(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # training and inference return the same: a comment is not a branch
            return x

    class Branching(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
            return (x, x) if self.training else x

    assert not class_branches(Commented) and class_branches(Branching)


def test_batch_norm_on_meta_answers_as_torchs_kernel() -> None:
    from torchscope._flops.metacache import FAST_META

    op = torch.ops.aten.native_batch_norm.default
    fast = FAST_META[op]
    checked = 0
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        for shape in [(2, 8), (2, 8, 5), (2, 8, 5, 5), (2, 8, 3, 5, 5)]:
            x = torch.empty(shape, dtype=dtype, device="meta")
            layouts = [x, x.transpose(0, -1)]
            if len(shape) in (4, 5):
                layouts.append(x.to(memory_format=torch.channels_last if len(shape) == 4 else torch.channels_last_3d))
            for t in layouts:
                c = t.shape[1]
                stats = torch.empty(c, dtype=torch.float32 if dtype != torch.float64 else dtype, device="meta")
                w = torch.empty(c, dtype=dtype, device="meta")
                for training in (False, True):
                    got = fast(t, w, w, stats, stats, training, 0.1, 1e-5)
                    if got is None:
                        continue  # a layout left to torch
                    ref = op(t, w, w, stats, stats, training, 0.1, 1e-5)
                    assert [(r.shape, r.stride(), r.dtype) for r in ref] == [(g.shape, g.stride(), g.dtype) for g in got]
                    checked += 1
    assert checked >= 30
    # eval without running statistics is torch's error, not an answer
    x = torch.empty(2, 8, device="meta")
    assert fast(x, None, None, None, None, False, 0.1, 1e-5) is None
