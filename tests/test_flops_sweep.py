"""Every torchvision classification model: MACs within 2% of torchvision's published figure, and no op
with real arithmetic left without a formula on any model of the sweep (torchvision, timm, recurrent).

torchvision publishes ``_ops`` (GMACs, its "GFLOPS" column) with each model's default weights; we run
each model at those weights' crop size on the meta device (no memory, no compute) and compare. The op
sweep runs the 80 torchvision models on meta, a handful of timm architectures on meta (random init,
nothing downloaded), a few models on the CPU (its fused kernels differ: oneDNN LSTM, attention fast
paths) and the recurrent zoo, and classifies every aten op that ran: counted (a formula),
zero-cost (no multiply-accumulates by nature) or missing. ``pytest -s`` prints the tally.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torchvision
from torchvision.models import get_model_weights, list_models
from zoo import RECURRENT, build_recurrent

import torchscope
from torchscope._loader import default_input_size

NAMES = list_models(module=torchvision.models)

TIMM = [
    "resnet50", "vit_base_patch16_224", "convnext_tiny", "efficientnet_b0", "swin_tiny_patch4_window7_224",
    "mobilenetv3_large_100", "deit_small_patch16_224", "regnety_016", "maxvit_tiny_tf_224",
    "eva02_tiny_patch14_224", "levit_128", "poolformer_s12", "xcit_tiny_12_p16_224", "crossvit_tiny_240",
    "tnt_s_patch16_224", "coatnet_0_rw_224", "fastvit_t8", "efficientformer_l1", "mixer_b16_224",
]  # fmt: skip

# on the CPU, at small inputs where the model allows: the kernels the meta device never picks
CPU = [("resnet18", (1, 3, 64, 64)), ("mobilenet_v3_small", (1, 3, 64, 64)), ("vit_b_16", (1, 3, 224, 224)),
       ("swin_t", (1, 3, 224, 224)), ("efficientnet_b0", (1, 3, 64, 64))]  # fmt: skip


def test_sweep_covers_every_classification_model() -> None:
    # not pinned to one torchvision release: its families are all there, whatever it adds
    families = {"resnet18", "vit_b_16", "convnext_tiny", "efficientnet_b0", "swin_t", "mobilenet_v3_small"}
    assert families <= set(NAMES) and NAMES == sorted(NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_mult_adds_match_published(name: str) -> None:
    model = torchscope.load_model(name, device="meta")
    published = get_model_weights(name).DEFAULT.meta["_ops"] * 1e9
    s = torchscope.summary(model, input_size=default_input_size(name), compare_modes=False)
    data = s.to_dict()
    assert data["total_flops"] == 2 * data["total_mult_adds"]
    assert data["total_mult_adds"] == pytest.approx(published, rel=0.02), name
    assert data["mult_adds_lower_bound"] is False and data["uncounted_ops"] == []


def _sweep() -> Iterator[tuple[str, Callable[[], torchscope.Summary]]]:
    for name in NAMES:
        yield (
            f"torchvision:{name}",
            lambda name=name: torchscope.summary(
                torchscope.load_model(name, device="meta"),
                input_size=default_input_size(name),
                compare_modes=False,
            ),
        )
    timm = pytest.importorskip("timm")
    for name in TIMM:

        def run(name: str = name) -> torchscope.Summary:
            with torch.device("meta"):
                model = timm.create_model(name, pretrained=False)
            return torchscope.summary(
                model, input_size=(1, *model.pretrained_cfg["input_size"]), compare_modes=False
            )

        yield f"timm:{name}", run
    for name, size in CPU:
        yield (
            f"cpu:{name}",
            lambda name=name, size=size: torchscope.summary(
                torchscope.load_model(name), input_size=size, compare_modes=False
            ),
        )
    for name in RECURRENT:

        def run_recurrent(name: str = name) -> torchscope.Summary:
            model, x = build_recurrent(name)
            return torchscope.summary(model, input_data=x if isinstance(x, tuple) else (x,))

        yield f"recurrent:{name}", run_recurrent


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
def test_no_op_with_arithmetic_lacks_a_formula() -> None:
    kinds: dict[str, str] = {}
    models: dict[str, list[str]] = defaultdict(list)
    for label, run in _sweep():
        s = run()
        assert s.total_mult_adds, label
        for op, kind in s.ops:
            kinds[op] = kind
            models[op].append(label)
    by_kind: dict[str, list[str]] = defaultdict(list)
    for op, kind in sorted(kinds.items()):
        by_kind[kind].append(op)
    print(f"\nop sweep: {len({m for ms in models.values() for m in ms})} models, {len(kinds)} aten ops")
    for kind in ("counted", "zero-cost", "missing"):
        ops = by_kind.get(kind, [])
        print(
            f"{kind:>9} ({len(ops)}): "
            + ", ".join(f"{op.removeprefix('aten.')} [{len(models[op])}]" for op in ops)
        )
    missing: dict[str, Any] = {op: models[op][:3] for op in by_kind.get("missing", [])}
    assert missing == {}
