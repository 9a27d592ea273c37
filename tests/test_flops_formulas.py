"""Our FLOP formulas against torch's, and the summary path that does not import torch's flop counter.

``torchscope._flops.formulas`` writes torch's formulas for matmuls, convolutions and attention
itself and takes torch's for the rest when one runs. Each of ours must give torch's answer (or
torch's error) on every shape, and the table must name exactly torch's ops.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import flop_registry, register_flop_formula

from torchscope._flops import MacCounter
from torchscope._flops.formulas import OURS, TORCH_FORMULA_NAMES, sdpa_backward_count, sdpa_count

aten = torch.ops.aten
dims = st.integers(1, 9)
SETTINGS = settings(max_examples=60, deadline=None)


def meta(*shape: int, transpose: bool = False) -> torch.Tensor:
    """A meta tensor of ``shape``, laid out transposed in its last two dims when asked."""
    if transpose and len(shape) >= 2:
        return torch.empty(*shape[:-2], shape[-1], shape[-2], device="meta").transpose(-1, -2)
    return torch.empty(*shape, device="meta")


def both(op: object, *args: object, out: object) -> tuple[object, object]:
    """(ours, torch's) for one call, an error counting as its type."""
    results = []
    for formula in (MacCounter().flop_registry[op], flop_registry[op]):
        try:
            results.append(formula(*args, out_val=out))
        except AssertionError as e:
            results.append(type(e))
    return results[0], results[1]


def test_the_static_table_names_exactly_the_installed_torchs_ops() -> None:
    assert {str(op) for op in flop_registry} == TORCH_FORMULA_NAMES


def test_every_op_of_torchs_table_is_counted() -> None:
    ours = MacCounter().flop_registry
    assert all(op in ours for op in flop_registry)
    assert set(flop_registry) <= set(ours)
    assert set(OURS) < {str(op) for op in flop_registry}  # each formula of ours stands in for one of torch's


@SETTINGS
@given(m=dims, k=dims, k2=dims, n=dims, b=dims, b2=dims, ta=st.booleans(), tb=st.booleans())
def test_matmul_formulas_are_torchs(
    m: int, k: int, k2: int, n: int, b: int, b2: int, ta: bool, tb: bool
) -> None:
    k2 = k if k2 % 3 else k2  # mostly matching inner dims; a mismatch must fail as torch's does
    b2 = b if b2 % 3 else b2
    a2, w2 = meta(m, k, transpose=ta), meta(k2, n, transpose=tb)
    a3, w3 = meta(b, m, k, transpose=ta), meta(b2, k2, n, transpose=tb)
    out2, out3 = meta(m, n), meta(b, m, n)
    for op, args, out in [
        (aten.mm, (a2, w2), out2),
        (aten.addmm, (meta(n), a2, w2), out2),
        (aten.bmm, (a3, w3), out3),
        (aten.baddbmm, (meta(b, m, n), a3, w3), out3),
    ]:
        ours, theirs = both(op, *args, out=out)
        assert ours == theirs, op


CONVS = [aten.convolution, aten._convolution, aten.cudnn_convolution, aten._slow_conv2d_forward]
CONVS.append(aten.convolution_overrideable)


@st.composite
def convolutions(draw: st.DrawFn) -> tuple[tuple[object, ...], torch.Tensor]:
    dim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(dim)]
    stride = [draw(st.integers(1, 3)) for _ in range(dim)]
    dilation = [draw(st.integers(1, 2)) for _ in range(dim)]
    padding = [draw(st.integers(0, 2)) for _ in range(dim)]
    out_pad = [draw(st.integers(0, s - 1)) if transposed else 0 for s in stride]
    x = meta(draw(st.integers(1, 3)), c_in, *[draw(st.integers(1, 9)) for _ in range(dim)])
    w = meta(c_in, c_out // groups, *kernel) if transposed else meta(c_out, c_in // groups, *kernel)
    args = (x, w, None, stride, padding, dilation, transposed, out_pad, groups)
    try:
        out = aten.convolution(*args)
    except RuntimeError:  # an output of size < 1 or an output padding torch refuses
        assume(False)
    return args, out


@SETTINGS
@given(conv=convolutions())
def test_convolution_formulas_are_torchs(conv: tuple[tuple[object, ...], torch.Tensor]) -> None:
    args, out = conv
    for op in CONVS:
        ours, theirs = both(op, *args, out=out)
        assert ours == theirs > 0, op


@SETTINGS
@given(conv=convolutions(), mask=st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_the_convolution_backward_formula_is_torchs(
    conv: tuple[tuple[object, ...], torch.Tensor], mask: tuple[bool, bool, bool]
) -> None:
    (x, w, _, stride, padding, dilation, transposed, out_pad, groups), out = conv
    bias_sizes = [out.shape[1]]
    args = (
        torch.empty_like(out),
        x,
        w,
        bias_sizes,
        stride,
        padding,
        dilation,
        transposed,
        out_pad,
        groups,
        list(mask),
    )
    grads = aten.convolution_backward(*args)
    ours, theirs = both(aten.convolution_backward, *args, out=grads)
    assert ours == theirs
    assert (ours > 0) == (mask[0] or mask[1])


SDPA = [
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_cudnn_attention,
]
SDPA_BACKWARD = [
    aten._scaled_dot_product_efficient_attention_backward,
    aten._scaled_dot_product_flash_attention_backward,
    aten._scaled_dot_product_cudnn_attention_backward,
]


@SETTINGS
@given(
    b=dims, h_kv=st.integers(1, 4), group=st.integers(1, 3), s_q=dims, s_k=dims, d=dims, d_v=dims,
    bad=st.sampled_from([None, "heads", "dim", "batch"]), tq=st.booleans(),
)  # fmt: skip
def test_attention_formulas_are_torchs(
    b: int, h_kv: int, group: int, s_q: int, s_k: int, d: int, d_v: int, bad: str | None, tq: bool
) -> None:
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    h_q = h_kv * group + (1 if bad == "heads" else 0)
    q = meta(b, h_q, s_q, d + (1 if bad == "dim" else 0), transpose=tq)
    k = meta(b + (1 if bad == "batch" else 0), h_kv, s_k, d)
    v = meta(b, h_kv, s_k, d_v)
    g = meta(b, h_q, s_q, d_v, transpose=tq)
    out = meta(b, h_q, s_q, d_v)
    for op in SDPA:
        ours, theirs = both(op, q, k, v, out=(out,))
        assert ours == theirs, op
    for op in SDPA_BACKWARD:
        ours, theirs = both(op, g, q, k, v, out=(q, k, v))
        assert ours == theirs, op
    # the counts the CPU attention kernels' formulas use
    for mine, torchs, shapes in [
        (sdpa_count, sdpa_flop_count, (q.shape, k.shape, v.shape)),
        (sdpa_backward_count, sdpa_backward_flop_count, (g.shape, q.shape, k.shape, v.shape)),
    ]:
        try:
            expected: object = torchs(*shapes)
        except AssertionError as e:
            expected = type(e)
        try:
            got: object = mine(*shapes)
        except AssertionError as e:
            got = type(e)
        assert got == expected
    if bad is None:
        assert sdpa_count(q.shape, k.shape, v.shape) == 2 * b * h_q * s_q * s_k * (d + d_v)


def test_an_op_left_to_torchs_formula_counts_as_torchs() -> None:
    # _efficient_attention_forward (CUDA) keeps torch's formula
    q, k, v = meta(2, 4, 5, 8), meta(2, 4, 7, 8), meta(2, 4, 7, 6)
    args = (q, k, v, None, None, None, None, None, 0.0, 0)
    op = aten._efficient_attention_forward
    ours, theirs = both(op, *args, out=None)
    assert ours == theirs == 2 * 2 * 5 * 4 * 7 * (8 + 6)


@torch.library.custom_op("torchscope_test::twice", mutates_args=())
def _twice(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_twice.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def test_a_formula_registered_with_torch_is_counted() -> None:
    op = torch.ops.torchscope_test.twice
    with MacCounter() as c:
        _twice(torch.ones(3, 5))
    assert c.kinds["torchscope_test.twice"].value == "missing"

    def twice_flop(x_shape: torch.Size, *, out_shape: object = None) -> int:
        return 2 * x_shape.numel()

    register_flop_formula(op)(twice_flop)
    try:
        with MacCounter() as c:
            _twice(torch.ones(3, 5))
    finally:
        del flop_registry[op]  # torch's table is global: leave it as it was
    assert c.macs_by_op() == {"torchscope_test.twice": 15}
    assert c.kinds["torchscope_test.twice"].value == "counted"


@pytest.mark.slow  # spawns a process
def test_a_summary_does_not_import_torchs_flop_counter() -> None:
    code = (
        "import sys, torch, torchvision, torchscope\n"
        "from torch import nn\n"
        "for device in ('cpu', 'meta'):\n"
        "    with torch.device(device):\n"
        "        cases = [\n"
        "            (torchvision.models.resnet50(), torch.randn(1, 3, 224, 224)),\n"
        "            (torchvision.models.vit_b_16(), torch.randn(1, 3, 224, 224)),\n"
        "            (nn.LSTM(16, 32, num_layers=2), torch.randn(5, 3, 16)),\n"
        "        ]\n"
        "    for model, x in cases:\n"
        "        s = torchscope.summary(model, input_data=x, verbose=0)\n"
        "        print(device, type(model).__name__, s.total_mult_adds > 0, 'torch.utils.flop_counter' in sys.modules)\n"
        # an op whose formula stays torch's imports torch's table when it runs, and counts
        "from torchscope._flops import MacCounter\n"
        "q, k, v = (torch.empty(2, 5, 4, 8, device='meta') for _ in range(3))\n"
        "n = MacCounter().flop_registry[torch.ops.aten._efficient_attention_forward](\n"
        "    q, k, v, None, None, None, None, None, 0.0, 0, out_val=None)\n"
        "print(n, 'torch.utils.flop_counter' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        f"{device} {name} True False"
        for device in ("cpu", "meta")
        for name in ("ResNet", "VisionTransformer", "LSTM")
    ] + [f"{2 * 2 * 5 * 4 * 4 * 16} True"]


QUERY_CALLS = [
    ("aten", "size", "default", ()), ("aten", "size", "int", (0,)), ("aten", "sym_size", "default", ()),
    ("aten", "sym_size", "int", (0,)), ("aten", "stride", "default", ()), ("aten", "stride", "int", (0,)),
    ("aten", "sym_stride", "default", ()), ("aten", "sym_stride", "int", (0,)),
    ("aten", "is_contiguous", "default", ()), ("aten", "is_contiguous", "memory_format", (torch.contiguous_format,)),
    ("aten", "is_strides_like_format", "default", (torch.contiguous_format,)),
    ("aten", "is_non_overlapping_and_dense", "default", ()), ("aten", "sym_is_contiguous", "default", ()),
    ("aten", "storage_offset", "default", ()), ("aten", "sym_storage_offset", "default", ()),
    ("aten", "numel", "default", ()), ("aten", "sym_numel", "default", ()), ("aten", "dim", "default", ()),
    ("prim", "layout", "default", ()),
]  # fmt: skip


@pytest.mark.parametrize(("ns", "name", "overload", "rest"), QUERY_CALLS)
def test_metadata_queries_are_left_to_the_tensor_as_torchs_mode_leaves_them(
    ns: str, name: str, overload: str, rest: tuple[object, ...]
) -> None:
    from torch.utils.flop_counter import FlopCounterMode, _FlopCounterMode

    from torchscope._flops.metacache import CachingFlopMode

    func = getattr(getattr(getattr(torch.ops, ns), name), overload)
    args = (torch.ones(2, 3), *rest)
    theirs = _FlopCounterMode(FlopCounterMode(display=False)).__torch_dispatch__(func, (), args, {})
    ours = CachingFlopMode(MacCounter())._torch_dispatch(func, args, {})
    assert (ours is NotImplemented) == (theirs is NotImplemented)
    if theirs is not NotImplemented:
        assert ours == theirs
