"""check_step under DDP and FSDP2 (fully_shard): 2 CPU processes with the gloo backend, spawned here.

One spawn runs both scenarios (starting processes is the slow part); each rank writes its reports as
JSON and the test reads them back.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

pytestmark = pytest.mark.distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_scenario(rank: int) -> dict:
    from zoo import SmallCNN

    from torchscope import check_step

    torch.manual_seed(0)
    model = SmallCNN()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    torch.manual_seed(rank)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,))

    def step() -> None:
        ddp.train()  # the classic bug: frozen BatchNorm back in train mode
        opt.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        opt.step()

    return check_step(ddp, step, optimizer=opt).to_dict()


def sharded_mlp() -> tuple[nn.Module, torch.optim.Optimizer]:
    """An MLP sharded over the 2 ranks with fully_shard (DTensor params), its first layer frozen,
    and an SGD optimizer over the rest (inside an initialized gloo process group)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (2,))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    model[0].requires_grad_(False)
    for layer in (model[0], model[2], model[4]):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)


def _fsdp_scenario(rank: int) -> dict:
    from torchscope import check_step

    model, opt = sharded_mlp()
    torch.manual_seed(rank)
    x = torch.randn(4, 16)

    def step() -> None:
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        if rank == 1:  # only rank 1 holds this shard, and only rank 1 writes to it
            with torch.no_grad():
                model[0].weight.to_local().mul_(0.5)

    return check_step(model, step, optimizer=opt, mode="fingerprint").to_dict()


def _worker(rank: int, port: int, out_dir: str, tests_dir: str) -> None:
    sys.path.insert(0, tests_dir)
    # gloo picks its interface from the hostname unless told: on a CI machine whose hostname does not
    # resolve to a reachable address its threads abort the process (SIGABRT); loopback always works
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        result = {"ddp": _ddp_scenario(rank), "fsdp": _fsdp_scenario(rank)}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(_free_port(), str(out), str(Path(__file__).parent)), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def _names(report: dict, kind: str) -> list[str]:
    return [v["name"] for v in report["violations"] if v["kind"] == kind]


def test_ddp_wrapped_model_uses_inner_names_and_gathers(results: list[dict]) -> None:
    rank0, rank1 = results[0]["ddp"], results[1]["ddp"]
    assert rank0 == rank1  # every rank gets the merged report
    assert rank0["world_size"] == 2 and rank0["wrappers"] == ["DistributedDataParallel"]
    assert rank0["frozen_params"] == 8 and rank0["trainable_params"] == 2
    assert _names(rank0, "frozen_buffer_changed") == [
        f"backbone.{i}.{b}" for i in (1, 4) for b in ("running_mean", "running_var", "num_batches_tracked")
    ]
    assert _names(rank0, "frozen_param_changed") == [] and _names(rank0, "trainable_not_updated") == []


def test_fsdp2_each_rank_checks_its_shard_and_rank0_reports_all(results: list[dict]) -> None:
    rank0 = results[0]["fsdp"]
    assert rank0["world_size"] == 2 and rank0["wrappers"] == ["fully_shard"]
    (v,) = rank0["violations"]
    assert (v["kind"], v["name"]) == ("frozen_param_changed", "0.weight")  # seen on rank 1 only
    assert "no optimizer holds it" in v["cause"]
    # bytes are summed over the shards: the whole model's frozen + trainable params
    total = sum(p.numel() * 4 for p in nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 4)).parameters())
    assert rank0["bytes_checked"] == total
    assert results[1]["fsdp"] == rank0
