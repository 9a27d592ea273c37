"""Distributed check_step: each rank checks what it holds; rank 0 (every rank, in fact) gets the whole.

With DDP every rank holds a full replica; with FSDP2 (``fully_shard``) params are DTensors and each
rank fingerprints and compares its local shard. The per-rank reports are gathered with
``all_gather_object`` and merged: a violation anywhere is a violation of the model, and a trainable
param counts as not updated only if no rank that holds a piece of it saw it change.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torch import nn

from torchscope._checkparts.config import ReferenceStep
from torchscope._checkparts.grouping import group_violations
from torchscope._checkparts.report import StepCheck, Violation


def is_sharded(model: nn.Module) -> bool:
    """Whether any param of ``model`` is a DTensor (FSDP2 / tensor parallel)."""
    return any(callable(getattr(p, "to_local", None)) for p in model.parameters())


def should_gather(model: nn.Module, wrappers: tuple[str, ...] = ()) -> bool:
    """Gather across ranks for a DDP-wrapped or sharded model in a process group of more than one rank.

    Only then: the step of such a model is itself collective, so every rank runs check_step; a plain
    model checked on one rank of a distributed job must not wait for the others.
    """
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    return "DistributedDataParallel" in wrappers or is_sharded(model)


def merge_reports(parts: list[tuple[dict[str, Any], tuple[str, ...]]], sharded: bool) -> StepCheck:
    """Merge ``(report.to_dict(), trainable names checked)`` from every rank into one report."""
    reports = [p[0] for p in parts]
    merged: dict[tuple[str, str], Violation] = {}
    not_updated: dict[str, list[Violation]] = {}
    for rep in reports:
        for v in rep["violations"]:
            change = v["max_abs_change"]
            change = float(change) if isinstance(change, str) else change  # json_float's "Infinity"/"NaN"
            viol = Violation(v["kind"], v["name"], change, v["cause"], v.get("fix"))
            if viol.kind == "trainable_not_updated":
                not_updated.setdefault(viol.name, []).append(viol)
                continue
            key = (viol.kind, viol.name)
            old = merged.get(key)
            if old is None or (viol.max_abs_change or 0.0) > (old.max_abs_change or 0.0):
                merged[key] = viol
    # A trainable param is not updated only if every rank that checked a piece of it says so.
    for name, viols in not_updated.items():
        holders = sum(1 for _, names in parts if name in names)
        if len(viols) >= holders:
            merged[("trainable_not_updated", name)] = viols[0]
    first = reports[0]
    ordered = sorted(merged.values(), key=lambda v: (first["checks"].index(v.kind) if v.kind in first["checks"] else 99))
    total = (lambda key: sum(r[key] for r in reports)) if sharded else (lambda key: first[key])
    return StepCheck(
        ok=not ordered,
        violations=tuple(ordered),
        mode=first["mode"],
        checks=tuple(first["checks"]),
        params=first["params"],
        frozen_params=first["frozen_params"],
        trainable_params=first["trainable_params"],
        buffers=first["buffers"],
        frozen_buffers=first["frozen_buffers"],
        bytes_checked=total("bytes_checked"),
        snapshot_bytes=total("snapshot_bytes"),
        optimizer_steps=first["optimizer_steps"],
        world_size=len(reports),
        wrappers=tuple(first["wrappers"]) + (("fully_shard",) if sharded else ()),
        caveats=tuple(dict.fromkeys(c for r in reports for c in r.get("caveats", ()))),
        groups=group_violations(ordered, keep={n for _, names in parts for n in names}),
        reference=ReferenceStep.from_dict(first["reference"]) if first.get("reference") else None,
        not_checked=tuple(first.get("not_checked", {}).items()),
        fingerprint=first.get("fingerprint"),
    )


def gather_report(report: StepCheck, checked_trainable: tuple[str, ...], model: nn.Module) -> StepCheck:
    """Collective: every rank must call it (check_step does); every rank returns the merged report."""
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (report.to_dict(), checked_trainable))
    return merge_reports(parts, is_sharded(model))
