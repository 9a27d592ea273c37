from __future__ import annotations

import dataclasses
import json
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from rendering import text
from torch import nn
from torchvision.models.inception import InceptionOutputs
from zoo import build

import torchscope
from torchscope import ForwardError, SpecError, capture_state, summary
from torchscope._inputs import flatten_outputs, make_inputs, parse_dtype, parse_input_size, prepare_call
from torchscope.render.summary import render_summary

ZOO_PY = str(Path(__file__).parent / "zoo.py")


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 4), nn.ReLU())


# --- the collector -------------------------------------------------------------------------------


def test_exact_dict_of_a_small_model() -> None:
    d = summary(tiny(), input_size=(2, 8)).to_dict()
    assert d["total_mult_adds"] == 2 * 8 * 4
    assert d["total_flops"] == 2 * d["total_mult_adds"]
    assert d["total_params"] == 36 and d["trainable_params"] == 36
    assert d["inputs"] == [{"name": "input[0]", "shape": [2, 8], "dtype": "float32"}]
    assert d["outputs"] == [{"name": "output", "shape": [2, 4], "dtype": "float32"}]
    assert [(r["name"], r["type"], r["depth"], r["params"], r["mult_adds"]) for r in d["rows"]] == [
        ("", "Sequential", 0, 36, 64),
        ("0", "Linear", 1, 36, 64),
        ("1", "ReLU", 1, 0, 0),
    ]
    # relu has no multiply-accumulates by nature: not a gap in the count
    assert [r["uncounted_ops"] for r in d["rows"]] == [[], [], []]
    assert d["uncounted_ops"] == [] and d["mult_adds_lower_bound"] is False
    assert d["ops"]["aten.addmm"] == "counted" and d["ops"]["aten.relu"] == "zero-cost"
    assert d["mult_adds_by_op"] == {"aten.addmm": 64}
    assert d["modes_differ"] is False


def test_an_op_without_formula_makes_the_total_a_lower_bound() -> None:
    # nn.Bilinear runs aten._trilinear, which does multiply-accumulates that no formula counts
    model = nn.Sequential(nn.Linear(4, 4), nn.Flatten())
    bil = nn.Bilinear(4, 4, 3)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.bil = model, bil

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.body(x)
            return self.bil(h, h)

    s = summary(Net(), input_size=(2, 4))
    d = s.to_dict()
    assert d["total_mult_adds"] == 2 * 4 * 4 and d["mult_adds_lower_bound"] is True
    assert d["uncounted_ops"] == ["aten._trilinear"] and d["ops"]["aten._trilinear"] == "missing"
    rows = {r["name"]: (r["mult_adds_lower_bound"], r["uncounted_ops"]) for r in d["rows"]}
    assert rows["bil"] == (True, ["aten._trilinear"]) and rows["body"] == (False, [])
    assert any(n.startswith("mult-adds is a lower bound: aten._trilinear") for n in d["notes"])
    out = text(render_summary(s))
    assert "FLOPs: >= 64 (mult-adds: >= 32)" in out and "Total mult-adds (M): 0.00 (a lower bound)" in out
    assert ">=: a lower bound; ops with arithmetic but no FLOP formula ran: trilinear" in out
    # the row of the op without a formula: a lower bound of 0, never a plain 0 or a dash
    bil_rows = [line for line in out.splitlines() if line.lstrip().startswith("bil (Bilinear)")]
    assert len(bil_rows) == 1 and bil_rows[0].rstrip().endswith(" >= 0"), bil_rows


def test_every_zoo_model_is_left_as_found(zoo_model) -> None:
    model, x = zoo_model
    lazy = any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())
    before = None if lazy else capture_state(model)
    s = summary(model, input_data=x)
    assert s.rows[0].name == "" and s.rows[0].completed and not s.mult_adds_lower_bound
    assert s.rows[0].params == s.total_params
    if lazy:  # the forward pass ran on a copy: the user's lazy module is still uninitialised
        assert isinstance(model.lazy.weight, nn.parameter.UninitializedParameter)
        assert s.total_params == 7 * 4 + 4 + 4 * 2 + 2
    else:
        assert s.total_params == sum({id(p): p.numel() for p in model.parameters()}.values())
        assert capture_state(model).differences(before) == []


def test_batchnorm_in_train_mode_keeps_running_stats() -> None:
    model, x = build("small_cnn")
    model.train()
    model.backbone[1].eval()  # a mixed state must come back too
    x.requires_grad_(False)
    before = capture_state(model)
    s = summary(model, input_data=x, mode="train")
    # SmallCNN's code never branches on `training`: the other mode is not run
    assert s.mode == "train" and s.other_mode is None
    assert capture_state(model).differences(before) == []
    assert int(model.backbone[1].num_batches_tracked) == 0


def test_all_outputs_are_listed_with_names() -> None:
    model, x = build("multi_output")
    s = summary(model, input_data=x)
    assert s.output_type == "Pair(logits, features)"
    assert [(t.name, t.shape) for t in s.outputs] == [("output.logits", (2, 3)), ("output.features", (2, 6))]


def test_dict_input_and_kwargs() -> None:
    model, x = build("dict_input")
    s = summary(model, input_data=x)
    assert [t.name for t in s.inputs] == ["input[0]['image']", "input[0]['tokens']"]
    assert [t.name for t in s.outputs] == ["output['logits']", "output['hidden']"]
    # the same input as keyword arguments
    s2 = summary(model, batch=x)
    assert s2.total_mult_adds == s.total_mult_adds > 0


def test_train_and_eval_outputs_differ() -> None:
    model, x = build("aux_head")
    s = summary(model, input_data=x)
    assert s.modes_differ
    assert s.output_type == "Tensor" and s.other_output_type == "Pair(logits, features)"
    assert "train mode returns Pair(logits, features), eval mode returns Tensor" in s.notes
    assert not summary(*build("small_cnn")[:1], input_size=(2, 3, 8, 8)).modes_differ


def test_the_other_mode_runs_when_code_branches_on_training() -> None:
    from torchscope._summary.collect import branches_on_training

    assert branches_on_training(build("aux_head")[0])  # `if self.training:` in its forward
    assert not branches_on_training(build("small_cnn")[0])  # BatchNorm's own reads do not count
    import torchvision

    assert branches_on_training(torchvision.models.googlenet(init_weights=False))
    assert not branches_on_training(torchvision.models.densenet121())  # F.dropout(training=...) only


def test_the_meta_shape_cache_gives_the_same_summary_cold_and_warm() -> None:
    import torchvision

    from torchscope._flops import metacache

    model = torchvision.models.resnet18().to("meta")
    metacache.clear()
    cold = summary(model, input_size=(2, 3, 64, 64))
    warm = summary(model, input_size=(2, 3, 64, 64))
    cpu = summary(torchvision.models.resnet18(), input_size=(2, 3, 64, 64))
    assert cold.to_dict() == warm.to_dict()
    assert [(r.name, r.outputs, r.mult_adds) for r in warm.rows] == [
        (r.name, r.outputs, r.mult_adds) for r in cpu.rows
    ]
    assert warm.total_mult_adds == cpu.total_mult_adds
    # another batch is another key: shapes follow the input, not the cache
    other = summary(model, input_size=(3, 3, 32, 32))
    assert other.outputs[0].shape == (3, 1000) and other.rows[1].outputs[0].shape == (3, 64, 16, 16)


def test_a_shape_error_on_meta_is_raised_also_after_a_cached_success() -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU()).to("meta")
    summary(model, input_size=(2, 8))
    with pytest.raises(ForwardError, match=r"failed in 0 \(Linear\) given \[2, 5\]"):
        summary(model, input_size=(2, 5))


def test_shared_module_has_one_row_per_call() -> None:
    model, x = build("shared_child")
    rows = [(r.name, r.call, r.mult_adds) for r in summary(model, input_data=x).rows]
    assert rows == [("", 0, 3 * 36 * 2 + 3 * 12), ("block", 0, 108), ("block", 1, 108), ("head", 0, 36)]


def test_attention_fast_path_and_sdpa_are_counted() -> None:
    b, seq, e, h = 2, 5, 16, 4
    mha = nn.MultiheadAttention(e, h, batch_first=True).eval()

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = mha

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn(x, x, x, need_weights=False)[0]

    s = summary(SelfAttention(), input_size=(b, seq, e))  # eval + no_grad: the fused fast path
    expected = 4 * b * seq * e * e + 2 * b * seq * seq * e
    assert s.total_mult_adds == expected
    assert "aten._native_multi_head_attention" in dict(s.mult_adds_by_op)

    class Sdpa(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return nn.functional.scaled_dot_product_attention(q, q, q)

    s = summary(Sdpa(), input_size=(b, h, seq, e // h))
    assert s.total_mult_adds == 2 * b * h * seq * seq * (e // h)
    assert s.uncounted_ops == ()


def test_meta_device_model_counts_the_same() -> None:
    cpu = summary(tiny(), input_size=(2, 8))
    meta = summary(tiny().to("meta"), input_size=(2, 8))
    assert meta.total_mult_adds == cpu.total_mult_adds
    assert meta.inputs == cpu.inputs


def test_failing_forward_names_module_shapes_and_predecessors() -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(5, 2))
    before = capture_state(model)
    with pytest.raises(
        ForwardError,
        match=r"forward pass failed in 2 \(Linear\) given \[3, 4\]: RuntimeError: .*; ran before it: 0, 1$",
    ) as info:
        summary(model, input_size=(3, 8))
    assert not hasattr(info.value, "partial")  # a failed forward gives no numbers
    assert capture_state(model).differences(before) == []


@pytest.mark.parametrize(
    ("build_model", "kwargs", "hint"),
    [
        (lambda: nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), {"input_size": (1, 4), "mode": "train"},
         r"failed in 1 \(BatchNorm1d\) given \[1, 4\]: ValueError: .*; use batch >= 2"),
        (lambda: nn.Sequential(nn.Linear(4, 2)), {"input_size": (2, 4), "dtypes": [torch.long]},
         r"^input\[0\] is int64 but 0 \(Linear\) has float32 weights: give float inputs \(--dtype float32\)$"),
        (lambda: nn.Sequential(nn.Conv2d(3, 4, 3)), {"input_size": (1, 4, 8, 8)},
         r"failed in 0 \(Conv2d\) given \[1, 4, 8, 8\]: RuntimeError: .*to have 3 channels, but got 4"),
    ],
)  # fmt: skip
def test_failing_forward_says_the_fix(build_model, kwargs: dict, hint: str) -> None:
    with pytest.raises(ForwardError, match=hint):
        summary(build_model(), compare_modes=False, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_size": (1, 8), "input_data": torch.zeros(1, 8)}, "give input_size or input_data, not both"),
        ({"input_size": (1, 8), "mode": "test"}, "mode='test' must be 'eval', 'train' or 'same'"),
        ({"input_size": (1, 0)}, r"input_size=\(1, 0\) needs positive dimensions"),
        ({"input_size": "1,8"}, "must be a shape like"),
        ({"input_size": (1, 8), "device": "gpu"}, r"device 'gpu' is not a device; use cpu, meta, cuda"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        summary(tiny(), **kwargs)


def test_public_names() -> None:
    assert torchscope.summary is summary
    assert torchscope.Summary.__name__ == "Summary"


# --- inputs and outputs --------------------------------------------------------------------------


def test_parse_input_size() -> None:
    assert parse_input_size("1,3,224,224") == [(1, 3, 224, 224)]
    assert parse_input_size("1,3,8,8;1,10") == [(1, 3, 8, 8), (1, 10)]
    with pytest.raises(SpecError, match="is not a list of integers"):
        parse_input_size("1,x")
    with pytest.raises(SpecError, match="needs positive dimensions"):
        parse_input_size("1,-3")
    with pytest.raises(SpecError, match="is empty"):
        parse_input_size(" ")


def test_make_inputs_dtypes() -> None:
    a, b = make_inputs([(2, 3), (2, 4)], dtype=["float16", "int64"])
    assert (a.dtype, b.dtype, tuple(b.shape)) == (torch.float16, torch.int64, (2, 4))
    assert set(b.unique().tolist()) <= {0, 1}
    assert parse_dtype("bf16") is torch.bfloat16
    with pytest.raises(SpecError, match="unknown dtype 'float8'"):
        parse_dtype("float8")
    with pytest.raises(SpecError, match="2 dtypes given for 1 input shapes"):
        make_inputs((2, 3), dtype=["float32", "int64"])


def test_prepare_call_styles() -> None:
    lin = nn.Linear(3, 2)
    args, kw = prepare_call(lin, input_data=(torch.zeros(1, 3),))
    assert len(args) == 1 and kw == {}
    images = [torch.zeros(3, 8, 8), torch.zeros(3, 9, 9)]
    args, _ = prepare_call(lin, input_data=images)
    assert args == (images,)  # a list is one argument (detection models)

    class TwoArgs(nn.Module):
        def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return image * mask

    data = {"image": torch.ones(2), "mask": torch.zeros(2)}
    args, kw = prepare_call(TwoArgs(), input_data=data)
    assert args == () and set(kw) == {"image", "mask"}


def test_flatten_outputs_of_every_structure() -> None:
    t = torch.zeros(1)

    @dataclasses.dataclass
    class Out:
        loss: torch.Tensor
        extra: tuple

    nt = namedtuple("nt", "a b")
    assert [n for n, _ in flatten_outputs(InceptionOutputs(t, None))] == ["output.logits"]
    assert [n for n, _ in flatten_outputs(Out(t, (t, 3)))] == ["output.loss", "output.extra[0]"]
    detections = [{"boxes": t, "labels": t}, {"boxes": t, "labels": t}]
    assert [n for n, _ in flatten_outputs(detections)] == [
        "output[0]['boxes']",
        "output[0]['labels']",
        "output[1]['boxes']",
        "output[1]['labels']",
    ]
    assert [n for n, _ in flatten_outputs(nt(t, {"x": [t]}), "y")] == ["y.a", "y.b['x'][0]"]


# --- the renderer --------------------------------------------------------------------------------


def test_render_exact() -> None:
    out = text(render_summary(summary(tiny(), input_size=(2, 8))))
    assert out.splitlines() == [
        "Layer (type)   Input shape   Output shape   Params   Mult-adds",
        "─" * 62,
        "Sequential     [2, 8]        [2, 4]             36          64",
        "  0 (Linear)   [2, 8]        [2, 4]             36          64",
        "  1 (ReLU)     [2, 4]        [2, 4]              0           -",
        "Total params: 36",
        "Trainable params: 36",
        "Non-trainable params: 0",
        "Total mult-adds (M): 0.00",
        "Input size (MB): 0.00",
        "Forward/backward pass size (MB): 0.00",
        "Params size (MB): 0.00",
        "Estimated Total Size (MB): 0.00",
        "Frozen params: 0",
        "FLOPs: 128 (mult-adds: 64), mode: eval",
        "Input: [2, 8]",
        "Output (Tensor): [2, 4]",
    ]
    wide = text(render_summary(summary(tiny(), input_size=(2, 8)), show_uncounted=True)).splitlines()
    assert wide[0].endswith("Mult-adds   Not counted") and wide[4].endswith("-")


@pytest.mark.parametrize("width", [60, 80, 200])
def test_numbers_never_wrap(width: int) -> None:
    import re

    import torchvision

    s = summary(torchvision.models.resnet18().to("meta"), input_size=(1, 3, 224, 224), compare_modes=False)
    numbers = re.compile(r"\d+(?:\.\d+)?")
    whole = set(numbers.findall(text(render_summary(s), width=1000)))
    out = text(render_summary(s), width=width)
    assert max(len(line) for line in out.splitlines()) <= width
    footer = [line for line in out.splitlines() if line.startswith("left out at ")]
    # a number cut in two ("[1, 3, 22" / "4]") would leave pieces the unwrapped table does not have
    body = "\n".join(line for line in out.splitlines() if line not in footer)
    assert set(numbers.findall(body)) <= whole
    top = next(line for line in out.splitlines() if line.startswith("ResNet"))
    header = out.splitlines()[0]
    if width >= 80:  # room for the mult-adds column: the row ends with the model's total
        assert top.split()[-2:] == ["1.81", "G"] and "11.7 M" in top and footer == [f"left out at {width} columns: Input shape (in --json)"] * (width == 80)
    else:  # the column is left out, and the footer says so
        assert "Mult-adds" not in header and top.split()[-2:] == ["11.7", "M"]
        assert footer == [f"left out at {width} columns: Input shape, Mult-adds (in --json)"]
    assert "Total mult-adds (G): 1.81" in out and "FLOPs: 3.63 G (mult-adds: 1.81 G), mode: eval" in out


def test_render_depth_and_multi_output() -> None:
    model, x = build("multi_output")
    out = text(render_summary(summary(model, input_data=x), depth=0))
    assert "body" not in out
    assert "logits: [2, 3]" in out and "features: [2, 6]" in out
    with pytest.raises(torchscope.TorchscopeError, match="--depth -1 must be >= 0"):
        render_summary(summary(model, input_data=x), depth=-1)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_model_counts_in_total() -> None:
    scripted = torch.jit.script(tiny())  # no Python hooks inside TorchScript: its layers' MACs unknown
    s = summary(scripted, input_size=(2, 8))
    assert (s.total_mult_adds, s.total_params, s.outputs[0].shape) == (64, 36, (2, 4))
    assert [(r.name, r.mult_adds, r.opaque) for r in s.rows] == [("", 64, False), ("0", None, True), ("1", None, True)]


def test_multihead_attention_out_proj_is_not_reported_as_never_called() -> None:
    class Attn(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
            self.unused = torch.nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.mha(x, x, x, need_weights=False)[0]

    s = torchscope.summary(Attn(), input_size=(2, 5, 8))
    assert s.to_dict()["not_called"] == ["unused"]


# --- the CLI: --strict, and forward errors said the same way by summary and activations ----------

BILINEAR_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bil = nn.Bilinear(4, 4, 3)

    def forward(self, x):
        h = self.fc(x)
        return self.bil(h, h)
"""


def test_cli_marks_a_lower_bound_and_strict_exits_1(tmp_path, cli) -> None:
    (tmp_path / "bilnet.py").write_text(BILINEAR_NET)
    spec = f"{tmp_path / 'bilnet.py'}:Net"
    table = cli("summary", spec, "--input-size", "2,4", "--no-color")
    assert table.exit_code == 0, table.output
    assert "FLOPs: >= 64 (mult-adds: >= 32)" in table.stdout
    assert "Total mult-adds (M): 0.00 (a lower bound)" in table.stdout
    doc = cli("summary", spec, "--input-size", "2,4", "--json")
    data = json.loads(doc.stdout)
    assert data["mult_adds_lower_bound"] is True and data["uncounted_ops"] == ["aten._trilinear"]
    strict = cli("summary", spec, "--input-size", "2,4", "--require-exact", "--no-color")
    assert strict.exit_code == 1
    assert "(mult-adds: >= 32)" in strict.stdout
    assert "--require-exact: mult-adds is a lower bound, no FLOP formula for aten._trilinear" in strict.stderr
    exact = cli("summary", f"{ZOO_PY}:SmallCNN", "--input-size", "2,3,8,8", "--require-exact", "--no-color")
    assert exact.exit_code == 0 and ">=" not in exact.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input-size", "2,4,8,8"], r"forward pass failed in backbone\.0 \(Conv2d\) given \[2, 4, 8, 8\]"),
        (["--input-size", "2,3,8,8", "--dtype", "int64"],
         r"input\[0\] is int64 but backbone\.0 \(Conv2d\) has float32 weights: give float inputs \(--dtype float32\)"),
        (["--input-size", "1,3,1,1", "--mode", "train"],
         r"backbone\.1 \(BatchNorm2d\) given \[1, 8, 1, 1\]: ValueError: .*; use batch >= 2"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["summary", "activations"])
def test_cli_forward_errors_are_one_line_and_no_numbers(
    cli, command: str, args: list[str], message: str
) -> None:
    import re

    result = cli(command, f"{ZOO_PY}:SmallCNN", *args, "--device", "cpu", "--no-color")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr


def test_cli_batch_one_in_train_mode_says_use_batch_two(cli) -> None:
    model = f"{ZOO_PY}:SmallCNN"
    result = cli("activations", model, "--input-size", "1,3,1,1", "--mode", "train", "--no-color")
    assert result.exit_code == 2 and result.stdout == ""
    assert "use batch >= 2" in result.stderr
    result = cli("summary", "inception_v3", "--mode", "train", "--no-color")
    assert result.exit_code == 2 and result.stdout == ""
    assert "AuxLogits" in result.stderr and "use batch >= 2" in result.stderr


def test_the_report_marks_a_lower_bound_too(tmp_path) -> None:
    import importlib.util

    (tmp_path / "bilnet_report.py").write_text(BILINEAR_NET)
    spec = importlib.util.spec_from_file_location("bilnet_report", tmp_path / "bilnet_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = torchscope.collect_report(module.Net(), input_size=(2, 4), check=False)
    assert data.mult_adds == 32 and data.to_dict()["summary"]["mult_adds_lower_bound"] is True
    assert any(n.startswith("mult-adds is a lower bound: aten._trilinear") for n in data.notes)
    exact = torchscope.collect_report(tiny(), input_size=(2, 8), check=False)
    assert exact.mult_adds == 64 and exact.mult_adds_lower_bound is False


def test_the_meta_shape_cache_never_answers_an_op_that_changes_metadata() -> None:
    from torchscope._flops import metacache

    aten = torch.ops.aten
    for op in (
        aten.resize_.default,
        aten.transpose_.default,
        aten.as_strided_.default,
        aten.set_.source_Tensor,
    ):
        assert metacache.op_kind(op) == 0, op
    assert metacache.op_kind(aten.add_.Tensor) == metacache._IN_PLACE
    assert metacache.op_kind(aten._native_batch_norm_legit_no_training.default) == metacache._FUNCTIONAL

    class Reshaper(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.clone()
            y.resize_(x.shape[0] * 2, x.shape[1] // 2)
            return y.transpose_(0, 1)

    model = Reshaper()
    for size in ((2, 8), (2, 8), (4, 6)):  # the second run is answered from the cache where it can be
        out = summary(model, input_data=torch.empty(size, device="meta")).outputs[0].shape
        assert out == (size[1] // 2, size[0] * 2)


def test_row_params_count_a_tied_or_shared_tensor_once_and_follow_requires_grad() -> None:
    # the bottom-up sums are used only when nothing is shared; these models take the other path
    shared = nn.Linear(4, 4)  # 20 params, in two places of the tree
    model = nn.Sequential(nn.Sequential(shared, nn.ReLU()), shared, nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    rows = {(r.name, r.call): (r.params, r.trainable_params) for r in summary(model, input_size=(1, 4)).rows}
    assert rows[("", 0)] == (20 + 10, 20 + 2)
    assert rows[("0", 0)] == (20, 20) and rows[("2", 0)] == (10, 2)
    tied, x = build("tied")
    s = summary(tied, input_data=x)
    unique = {id(p): p.numel() for p in tied.parameters()}
    assert s.rows[0].params == s.total_params == sum(unique.values())
    plain = nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), nn.Linear(4, 2))
    plain[1].bias.requires_grad_(False)
    got = [(r.name, r.params, r.trainable_params) for r in summary(plain, input_size=(1, 4)).rows]
    assert got == [("", 30, 28), ("0", 20, 20), ("0.0", 20, 20), ("0.1", 0, 0), ("1", 10, 8)]


def test_a_train_override_is_respected_and_every_flag_is_put_back() -> None:
    seen: list[bool] = []

    class FrozenNorm(nn.Module):  # the usual "train, but keep the norm layers in eval" override
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.bn = nn.Linear(4, 4), nn.BatchNorm1d(4)

        def train(self, mode: bool = True) -> FrozenNorm:
            super().train(mode)
            self.bn.eval()
            return self

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(self.bn.training)
            return self.bn(self.fc(x))

    model = FrozenNorm().eval()
    before = capture_state(model)
    summary(model, input_size=(2, 4), mode="train", compare_modes=False)
    assert seen == [False]  # train() went through the override
    assert capture_state(model).differences(before) == []
    plain = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).train()
    plain[1].eval()  # mixed flags come back as they were
    summary(plain, input_size=(2, 4), mode="eval")
    assert [m.training for m in plain.modules()] == [True, True, False]


def test_the_shape_cache_reuses_a_mult_add_count_only_for_the_same_arguments() -> None:
    from torchscope._flops import metacache

    metacache.clear()
    for size in [(2, 3, 32, 32), (2, 3, 48, 32), (2, 3, 32, 32), (5, 3, 32, 32)]:
        for groups in (1, 3):
            model = nn.Sequential(nn.Conv2d(3, 6, 3, groups=groups), nn.BatchNorm2d(6), nn.ReLU())
            warm = summary(model.to("meta"), input_size=size, compare_modes=False)
            n, _, h, w = size
            macs = n * 6 * (h - 2) * (w - 2) * (3 // groups) * 9  # hand count: out elements x taps
            assert warm.total_mult_adds == macs == warm.rows[1].mult_adds, (size, groups)


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("groups", [1, 2])
def test_the_direct_convolution_formula_is_torchs(dim: int, transposed: bool, groups: int) -> None:
    from torch.utils.flop_counter import conv_flop

    from torchscope._flops import MacCounter

    aten = torch.ops.aten
    x = torch.empty(2, 4, *[7] * dim, device="meta")
    w = torch.empty(4, (6 if transposed else 4) // groups, *[3] * dim, device="meta")
    args = (x, w, None, [2] * dim, [1] * dim, [1] * dim, transposed, [1 if transposed else 0] * dim, groups)
    out = aten.convolution(*args)
    ours = MacCounter().flop_registry[aten.convolution](*args, out_val=out)
    assert ours == conv_flop.__wrapped__(x.shape, w.shape, *args[2:], out_shape=out.shape) > 0
