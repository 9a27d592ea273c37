"""estimate_memory: the prediction against a real CPU step, the breakdown, options, state, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from zoo import DecoderLM, SmallCNN, build

import torchscope
from torchscope._memory.schema import MemoryReport
from torchscope._memory.step import StepConfig
from torchscope._memory.truth import measured_peak
from torchscope.errors import ForwardError, TorchscopeError


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


def _cnn(frozen: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = SmallCNN(num_classes=5)
    if frozen:
        torchscope.freeze_backbone(model)
    return model


CONFIGS = [
    dict(optimizer="adamw"),
    dict(optimizer="sgd"),
    dict(optimizer="sgd-momentum"),
    dict(optimizer="adamw", amp="bf16"),
    dict(optimizer="sgd-momentum", amp="fp16"),  # loss scaling, grads unscaled in place
    dict(optimizer="adamw", dtype="bf16"),
    dict(optimizer="sgd-momentum", channels_last=True),
    dict(mode="eval"),
]


@pytest.mark.parametrize("frozen", [False, True], ids=["full", "frozen"])
@pytest.mark.parametrize("options", CONFIGS, ids=lambda o: "-".join(f"{v}" for v in o.values()))
def test_prediction_matches_a_real_cpu_step(options: dict, frozen: bool) -> None:
    model = _cnn(frozen)
    shape = (4, 3, 16, 16)
    report = torchscope.estimate_memory(model, shape, device="cpu", **options)
    truth = measured_peak(model, (((shape), torch.float32),), StepConfig(device="cpu", **options))
    assert truth > 0
    assert abs(report.peak - truth) <= 0.01 * truth, (report.peak, truth)


def test_breakdown_counts_params_grads_and_adamw_state_exactly() -> None:
    model = _mlp()
    n = sum(p.numel() for p in model.parameters())
    report = torchscope.estimate_memory(model, (32, 64), optimizer="adamw", device="cpu")
    assert report.kind("parameters") == 4 * n
    assert report.weights == 4 * n and report.trainable == n == report.total_params
    # AdamW's peak is in its (per-parameter loop on the CPU) update: all grads alive, both moments
    assert report.phase == "optimizer"
    assert report.kind("gradients") == 4 * n
    assert report.kind("optimizer state") >= 2 * 4 * n
    assert report.peak == sum(dict(report.breakdown).values())
    assert sum(m.total for m in report.modules) == report.peak


def test_frozen_params_get_no_grad_and_no_state() -> None:
    model = _cnn(frozen=True)
    head = sum(p.numel() for p in model.fc.parameters())
    report = torchscope.estimate_memory(model, (8, 3, 16, 16), optimizer="sgd-momentum", device="cpu")
    assert report.trainable == head
    backbone = [m for m in report.modules if m.name.startswith("backbone.")]  # the wrapper's children
    assert backbone and all(m.gradients == 0 and m.optimizer_state == 0 for m in backbone)
    (fc,) = [m for m in report.modules if m.name == "fc"]
    assert fc.parameters == fc.optimizer_state == 4 * head
    full = torchscope.estimate_memory(_cnn(), (8, 3, 16, 16), optimizer="sgd-momentum", device="cpu")
    assert report.peak < full.peak
    assert report.kind("activations") < full.kind("activations")  # a frozen stem saves less for backward


def test_optimizer_state_grows_sgd_momentum_adamw() -> None:
    model = _mlp()
    peaks = {
        name: torchscope.estimate_memory(model, (2, 64), optimizer=name, device="cpu")
        for name in ("sgd", "sgd-momentum", "adamw")
    }
    n = sum(p.numel() for p in model.parameters())
    assert peaks["sgd"].kind("optimizer state") == 0
    assert peaks["sgd-momentum"].kind("optimizer state") == 4 * n
    assert peaks["adamw"].kind("optimizer state") >= 8 * n
    assert peaks["sgd"].peak < peaks["sgd-momentum"].peak < peaks["adamw"].peak


def test_eval_mode_is_weights_plus_activations_and_phase_forward() -> None:
    model = _mlp()
    report = torchscope.estimate_memory(model, (16, 64), mode="eval", device="cpu")
    assert report.phase == "forward" and report.kind("gradients") == 0 and report.kind("optimizer state") == 0
    assert report.kind("activations") == 0  # nothing is saved under no_grad


def test_cuda_target_rounds_every_storage_to_512_bytes() -> None:
    model = nn.Linear(3, 2)  # weight 24 B, bias 8 B
    cpu = torchscope.estimate_memory(model, (1, 3), optimizer="sgd", device="cpu")
    cuda = torchscope.estimate_memory(model, (1, 3), optimizer="sgd", device="cuda")
    assert cpu.kind("parameters") == 32
    assert cuda.kind("parameters") == 1024 and cuda.block == 512
    assert cuda.peak % 512 == 0


def test_user_step_is_traced_and_the_derived_second_step_matches_a_run_one() -> None:
    model = _cnn()

    def step(m: nn.Module, batch: list[torch.Tensor], opt: torch.optim.Optimizer | None) -> None:
        assert opt is not None
        opt.zero_grad(set_to_none=True)
        logits = m(*batch)
        loss = nn.functional.cross_entropy(
            logits, torch.randint(0, 5, (logits.shape[0],), device=logits.device)
        )
        del logits  # as the built-in step: the logits are not kept through backward
        loss.backward()
        del loss
        opt.step()

    ours = torchscope.estimate_memory(model, (4, 3, 16, 16), device="cpu")
    theirs = torchscope.estimate_memory(model, (4, 3, 16, 16), step=step, device="cpu")
    assert theirs.step == "your step"
    assert theirs.peak == ours.peak and theirs.phase == ours.phase

    def twice(m: nn.Module, batch: list[torch.Tensor], opt: torch.optim.Optimizer | None) -> None:
        keep = [m(*batch), m(*batch)]  # two forwards alive at once: twice the activations
        sum(t.sum() for t in keep).backward()

    double = torchscope.estimate_memory(model, (4, 3, 16, 16), step=twice, device="cpu")
    assert double.kind("activations") > 1.9 * ours.kind("activations")


def test_model_state_is_restored() -> None:
    model = _cnn(frozen=True)
    model.eval()
    before = {n: p for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in before.items()}
    buffers = {n: b for n, b in model.named_buffers()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torchscope.estimate_memory(model, (2, 3, 8, 8), amp="bf16", device="cpu")
    assert {n: p for n, p in model.named_parameters()} == before
    assert all(p.grad is None for p in model.parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: b for n, b in model.named_buffers()} == buffers
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(m.training for m in model.modules())
    assert not nn.modules.module._global_forward_hooks and not nn.modules.module._global_forward_pre_hooks
    from torch.optim import optimizer as optim_module

    assert not optim_module._global_optimizer_pre_hooks and not optim_module._global_optimizer_post_hooks


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.pick = _Nonzero()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pick(self.body(x))


class _Nonzero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[x > 0]  # output shape depends on the values


@pytest.mark.parametrize("amp", ["off", "bf16"])  # meta device and fake tensors
def test_data_dependent_model_names_op_and_module(amp: str) -> None:
    model = _DataDependent()
    with pytest.raises(
        ForwardError,
        match=r"cannot predict memory: aten\.(index|nonzero)\b.* in module 'pick' .*depends on tensor values.*no number",
    ):
        torchscope.estimate_memory(model, (2, 4), amp=amp)
    assert model.body.weight.device.type == "cpu"  # restored after the failure
    assert not nn.modules.module._global_forward_hooks


def test_meta_model_of_llama_7b_size_is_answered_without_allocating() -> None:
    with torch.device("meta"):
        model = DecoderLM(vocab=32000, dim=4096, heads=32, ff=11008, layers=32)
    n = sum(p.numel() for p in model.parameters())
    assert n > 5e9
    report = torchscope.estimate_memory(model, torch.empty(1, 2048, dtype=torch.long, device="meta"))
    assert report.kind("parameters") == 4 * n  # fp32 weights, each tensor a multiple of 512 already
    assert report.peak >= 16 * n  # weights, grads and AdamW's two moments
    assert all(p.is_meta for p in model.parameters())


def test_inputs_in_any_form_and_bad_ones() -> None:
    model, x = build("small_cnn")
    a = torchscope.estimate_memory(model, x, device="cpu")
    b = torchscope.estimate_memory(model, tuple(x.shape), device="cpu")
    c = torchscope.estimate_memory(model, [torch.empty(x.shape, device="meta")], device="cpu")
    assert a.peak == b.peak == c.peak
    assert isinstance(a, MemoryReport) and a.inputs == (tuple(x.shape),)
    with pytest.raises(TorchscopeError, match="not a tensor, a shape"):
        torchscope.estimate_memory(model, "x")
    with pytest.raises(TorchscopeError, match="--optimizer 'lion' is not one of"):
        torchscope.estimate_memory(model, x, optimizer="lion")
    with pytest.raises(TorchscopeError, match="autocast needs fp32 weights"):
        torchscope.estimate_memory(model, x, amp="bf16", dtype="bf16")
    with pytest.raises(TorchscopeError, match="has no gradient checkpointing"):
        torchscope.estimate_memory(model, x, grad_checkpointing=True)


def test_to_dict_is_plain_data() -> None:
    import json

    report = torchscope.estimate_memory(_mlp(), (2, 64), device="cpu", fit="2GiB")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["peak"] == report.peak
    assert set(data["breakdown"]) == {
        "parameters",
        "buffers",
        "gradients",
        "optimizer state",
        "activations",
        "temporaries",
    }
    assert data["fit"]["batch_size"] == report.fit.batch_size > 0
    assert "CUDA context" in data["fit"]["margin"]["description"]


def test_report_has_a_memory_section() -> None:
    from torchscope._report import collect_report
    from torchscope.render.html import render_html

    model = _cnn()
    data = collect_report(model, input_size=(2, 3, 16, 16))
    assert data.memory is not None
    expected = torchscope.estimate_memory(model, (2, 3, 16, 16), optimizer="sgd-momentum")
    assert data.memory.peak == expected.peak  # the report's reference step: SGD momentum 0.9
    assert data.to_dict()["memory"]["breakdown"]["parameters"] == expected.kind("parameters")
    page = render_html(data)
    assert "Memory: predicted peak of a training step" in page and "peak memory (cuda)" in page
    dict_model, batch = build("dict_input")
    data = collect_report(dict_model, input_data=batch, check=False)
    assert data.memory is None and any(n.startswith("memory skipped: inputs dict") for n in data.notes)


@torch.library.custom_op("torchscope_test::mystery", mutates_args=())
def _mystery(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


class _Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.odd = _Odd()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.odd(self.lin(x))


class _Odd(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mystery(x)


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_custom_op_without_fake_kernel_names_op_and_module(amp: str) -> None:
    with pytest.raises(
        ForwardError, match=r"torchscope_test\.mystery in module 'odd' .*no fake \(meta\) kernel"
    ):
        torchscope.estimate_memory(_Custom(), (2, 4), amp=amp)


class _UnusedBranch(nn.Module):
    """An auxiliary head whose output the loss ignores (googlenet's, inception's in train mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.aux = nn.Sequential(nn.Conv2d(8, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.head(h), self.aux(h)


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_an_unused_branch_is_freed_as_autograd_frees_it(amp: str) -> None:
    # The hook that sees saved tensors must not keep the unused branch's graph alive (a saved output
    # referring to its own node is a reference cycle only the garbage collector would free).
    torch.manual_seed(0)
    model = _UnusedBranch()
    shape = (4, 3, 32, 32)
    report = torchscope.estimate_memory(model, shape, device="cpu", amp=amp)
    truth = measured_peak(model, ((shape, torch.float32),), StepConfig(device="cpu", amp=amp))
    # exact, but for AdamW's step counters (4 bytes per updated tensor), host tensors on the meta path
    assert 0 <= truth - report.peak <= 4 * 4


def test_grad_checkpointing_saves_activations_and_matches_a_real_step() -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.densenet121(num_classes=10)
    shape = (2, 3, 32, 32)
    plain = torchscope.estimate_memory(model, shape, optimizer="sgd", device="cpu")
    ckpt = torchscope.estimate_memory(model, shape, optimizer="sgd", device="cpu", grad_checkpointing=True)
    assert ckpt.kind("activations") < plain.kind("activations")
    assert not any(getattr(m, "memory_efficient", False) for m in model.modules())  # switched back off
    truth = measured_peak(
        model, ((shape, torch.float32),), StepConfig(optimizer="sgd", device="cpu", grad_checkpointing=True)
    )
    assert abs(ckpt.peak - truth) <= 0.01 * truth, (ckpt.peak, truth)
