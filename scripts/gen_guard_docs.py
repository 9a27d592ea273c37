"""Write docs/guard.md: the freeze guard's page, whose examples are run here and whose printed
messages are what they print now, so the page cannot drift from the code.

    python scripts/gen_guard_docs.py           # rewrite docs/guard.md
    python scripts/gen_guard_docs.py --check   # exit 1 if docs/guard.md is out of date (the test suite runs it)
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "guard.md"

PRELUDE = '''\
import torch
import torch.nn.functional as F
from torch import nn

import torchscope

def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

def train(model, opt, steps, **zero_grad):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 4, generator=g), torch.randint(0, 2, (16,), generator=g)
        opt.zero_grad(**zero_grad)
        F.cross_entropy(model(x), y).backward()
        opt.step()
'''

#: (title, what goes wrong, the example). Each example ends inside a guard that raises.
BUGS: list[tuple[str, str, str]] = [
    (
        "1. Weight decay through a zeroed grad",
        "The optimizer was built over every param and the loop clears grads with "
        "`zero_grad(set_to_none=False)`: a frozen param keeps a grad of zeros, so weight decay "
        "(or momentum) still moves it.",
        '''\
model = net()
opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.01)
train(model, opt, 1)                      # a first step: every param has a .grad now
model[0].requires_grad_(False)            # freeze the first layer...
model[1].eval()
with torchscope.guard(model, optimizer=opt):
    train(model, opt, 3, set_to_none=False)   # ...but its grad is zero, not None
''',
    ),
    (
        "2. Freezing after backward (a stale grad)",
        "The freeze came between `backward()` and `step()`: the grad computed before it is still "
        "there, and the next step applies it.",
        '''\
model = net()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
F.cross_entropy(model(x), y).backward()
model[0].requires_grad_(False)            # too late for this step's grad
with torchscope.guard(model, optimizer=opt):
    opt.step()
''',
    ),
    (
        "3. BatchNorm in train mode",
        "`requires_grad=False` stops the weights, not the running statistics: the loop's "
        "`model.train()` puts the frozen BatchNorm back in train mode and every forward moves them.",
        '''\
model = net()
model[:2].requires_grad_(False)           # freeze Linear + BatchNorm
opt = torch.optim.SGD(model[3].parameters(), lr=0.1)
with torchscope.guard(model, optimizer=opt):
    model.train()                         # what every training loop does first
    train(model, opt, 2)
''',
    ),
    (
        "4. Tied weights undoing a freeze",
        "The embedding and the output layer share one tensor. Freezing the embedding and then "
        "training the output layer trains the embedding too. Name what must stay frozen "
        "(`frozen=`) and the guard sees both names of the one tensor.",
        '''\
class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(20, 8)
        self.out = nn.Linear(8, 20, bias=False)
        self.out.weight = self.embed.weight   # tied

    def forward(self, idx):
        return self.out(torch.tanh(self.embed(idx)))

model = TiedLM()
model.embed.requires_grad_(False)
model.out.requires_grad_(True)            # "train the head": the same tensor
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
idx = torch.randint(0, 20, (2, 5), generator=torch.Generator().manual_seed(1))
with torchscope.guard(model, frozen=["embed.*"], optimizer=opt):
    F.cross_entropy(model(idx).flatten(0, 1), idx.flatten()).backward()
    opt.step()
''',
    ),
    (
        "5. `requires_grad` switched back on",
        "Adapter loading, `resize_token_embeddings` on older transformers, or unfreeze code flip "
        "`requires_grad` back on after the freeze; an optimizer that holds those params trains "
        "them. The guard recorded every flag when it started.",
        '''\
model = net()
model[:2].requires_grad_(False)
model[1].eval()
opt = torch.optim.SGD(model.parameters(), lr=0.1)   # all params: harmless while they get no grad
with torchscope.guard(model, optimizer=opt):
    train(model, opt, 2)
    model.requires_grad_(True)            # e.g. load_adapter(..., is_trainable=True) on the whole model
    train(model, opt, 1)
''',
    ),
    (
        "6. An optimizer built before the freeze",
        "The optimizer ran a few steps with everything trainable, so it holds momentum for the "
        "params frozen since; with grads zeroed rather than cleared, that momentum keeps moving them.",
        '''\
model = net()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
train(model, opt, 2)                      # warm-up with everything trainable
model[0].requires_grad_(False)
model[1].requires_grad_(False)
model[1].eval()
with torchscope.guard(model, optimizer=opt):
    train(model, opt, 1, set_to_none=False)
''',
    ),
]

HEAD = """\
# The freeze guard: watch your own training loop

<!-- Generated by scripts/gen_guard_docs.py from examples it runs; edit the script, not this page.
     `python scripts/gen_guard_docs.py --check` runs in the test suite. -->

`check_step` and `check-freeze` prove a freeze on a step they run. `torchscope.guard` watches the
run you already have: your loop, your optimizer, your data, every step. The moment a tensor you
froze moves, it raises `FreezeCheckError` (an `AssertionError`) naming every changed tensor at once,
with its shape, the optimizer step it first moved at, and the cause with its fix, said once for
all the tensors one fix repairs.

```python
with torchscope.guard(model, optimizer=opt):      # checks after every real opt.step()
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
```

- **What is frozen**: by default what is frozen when the guard starts, `requires_grad=False`
  params plus the buffers of modules whose own params are all frozen (BatchNorm running stats),
  the same default as `check_step`; `frozen=["backbone.*"]` names it instead.
- **When it checks**: after every `every`-th real `optimizer.step()` (a step hook on the
  optimizer). A step that AMP's `GradScaler` skipped never calls `optimizer.step()`, so it is not
  counted; with gradient accumulation only the updates count. Without an optimizer, call
  `guard.check()` where you like. Leaving the `with` block checks once more and removes every hook
  (nothing stays registered on the model or the optimizer).
- **Against what**: the state when the guard started, read by qualified name each time. Slow
  drift adds up and is caught; a tensor or module that was *replaced* (a new head,
  `resize_token_embeddings`, adapter loading) is caught as surely as one edited in place; a change
  is reported with the step where it first appeared (with `every=N`: the first check that saw it).
- **Memory**: `mode="fingerprint"` (the default) keeps 8 bytes per tensor (and 8 per MiB of the
  frozen params its sweep reads); `mode="exact"` keeps one copy of the frozen tensors and reports
  the largest change (max |change|).
- **How much it reads**: every frozen byte within a few checks, not at every check, unless you
  ask (`content="every-step"`); see [how a check reads the frozen values](#how-a-check-reads-the-frozen-values).
- **The other direction**: `expect_updates=True` also checks that every trainable param got a grad
  and moved within the first 3 checks (LoRA's `lora_A`, which first moves on step 2, is not a bug).
- **Going on**: `fail_fast=False` keeps the reports in `guard.reports` instead of raising: the last
  100 checks' and every earlier one that first saw a violation (`guard.checks` counts them all), so
  a long run does not pile up a report per step.
- **What it cannot read**: tensors on the meta device (offloaded, lazy) are compared by identity,
  shape and flags only, and the report says which. Sharded (DTensor/FSDP2) tensors are read as the
  local shard each rank holds: each rank checks its own shard, and a violation raises on the rank
  that saw it.

The report is a `StepReport`, the one `check_step` returns: `str(report)`, `report.to_dict()`
(each violation with its `step` and `shape`, the report with `guard_step`) and
`torchscope.render.check.render_check(report)` show it as they show a `check_step` result.

## Which tool when

| you want to | use |
|---|---|
| watch the real run, every step, at near-zero cost | `torchscope.guard` / the `FreezeGuard` callbacks |
| prove the invariants on a step it controls (and puts back) | `check_step`, Lightning's `CheckFreeze` |
| check a model from the command line with a reference fine-tune | `torchscope check-freeze` |

## In your framework

The adapters only map their framework's events onto the guard; the same `FreezeCheckError`
comes out of each.

**Hugging Face `Trainer`** (`pip install 'torchscope[hf]'`): starts at `on_train_begin`, checks
at `on_optimizer_step`; by default raises at once, with `fail_fast=False` it sets
`control.should_training_stop` and keeps the report (`callback.report`).

```python
from torchscope.integrations.transformers import FreezeGuard

trainer = Trainer(model, args, train_dataset=ds, callbacks=[FreezeGuard(every_n_steps=1)])
trainer.train()
```

**Lightning** (`pip install 'torchscope[lightning]'`): checks at `on_train_batch_end`, the first
hook that sees the stepped weights.

```python
from torchscope.integrations.lightning import FreezeGuard

trainer = L.Trainer(callbacks=[FreezeGuard()])
```

**Accelerate**: hand the guard what `prepare` returned; it unwraps the prepared optimizer, so a
micro-batch that only accumulates is no step (tested in `tests/test_guard_accelerate.py`).

```python
model, opt = accelerator.prepare(model, opt)
with torchscope.guard(model, optimizer=opt):
    for x, y in loader:
        with accelerator.accumulate(model):
            accelerator.backward(loss_fn(model(x), y))
            opt.step()
            opt.zero_grad()
```

**A plain loop with `GradScaler`**: a step the scaler skips (inf/NaN grads) is not counted
(tested in `tests/test_guard.py`).

```python
scaler = torch.amp.GradScaler("cuda")
with torchscope.guard(model, optimizer=opt):
    for x, y in loader:
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)          # skipped on overflow: no step, no check
        scaler.update()
```

## The bugs it catches

Each example below runs as it is (after this prelude) and prints the message shown; this page is
generated from them.

```python
{prelude}```
"""

COST = """
## How a check reads the frozen values

Reading every frozen byte at every optimizer step is a full pass over the frozen weights per
step. Most frozen tensors can only move by a few routes, and most routes leave a mark that is free
to read, so with the default `content="sweep"` a check after an optimizer step reads:

| frozen tensors | read at every check | found |
|---|---|---|
| buffers (BatchNorm's train-mode update leaves no mark), params an optimizer holds (a fused optimizer's step leaves none), tensors off the CPU or sharded (DTensor), any tensor once it changed | every byte | at the step (`found_by="full"`) |
| every other frozen param (a frozen backbone outside the optimizer) | its version counter and memory address (`copy_`, `mul_`, `load_state_dict` under `no_grad` bump the counter; `p.data = t` moves the memory), and a 2-slice sample (a whole tensor written through `.data`, or by an optimizer the guard was not given, changes it); a tensor whose counter, address or sample moved is read in full at once, so a bump without a change (`add_(0)`) is no violation | at the step (`version`, `storage`, `sample`) |
| the same params, besides | a rotating sweep: about 4 MiB per check against each 1 MiB slice's fingerprint from the start, every byte within `sweep_checks` checks (None: the frozen bytes over 4 MiB, at most 64) | a write that leaves no mark into a few elements (`p.data[i] = x`, numpy): within `sweep_checks` checks, with the steps it happened between (`since_step`; the step column shows `13-20`) |

The last check (leaving the `with` block, `close()`) and a `guard.check()` you call yourself read
every byte (`found_by="final"`). Where one check's 4 MiB already covers the frozen params (small
models), every check reads every byte. A check that did not read every byte says so in its report
(a note naming how many tensors were read how, and the `sweep_checks` in effect).
`content="every-step"` reads every frozen byte at every check: a full pass over the frozen weights
per step (8 to 12 % of a resnet18 head fine-tune's step on a loaded 2-core machine; the sweep's
figures are beside it).

How often to check is discussed in [Prove the freeze](freeze.md#the-freeze-guards-cost); the numbers,
from `benchmarks/guard_overhead.py`, are in [Benchmark results](benchmarks.md#freeze-guard-overhead).
"""


def run_example(code: str) -> str:
    """Run ``code`` after the prelude; the message of the FreezeCheckError it raises."""
    from torchscope.errors import FreezeCheckError

    scope: dict[str, object] = {}
    exec(compile(PRELUDE, "<prelude>", "exec"), scope)
    try:
        exec(compile(code, "<example>", "exec"), scope)
    except FreezeCheckError as exc:
        return str(exc)
    raise SystemExit(f"the example did not raise FreezeCheckError:\n{code}")


def render() -> str:
    parts = [HEAD.replace("{prelude}", PRELUDE)]
    for title, what, code in BUGS:
        message = run_example(code)
        parts.append(f"\n### {title}\n\n{what}\n\n```python\n{code}```\n\n```text\n{message}\n```\n")
    parts.append(COST)
    return "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or ""))
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/guard.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print("docs/guard.md is out of date; run: python scripts/gen_guard_docs.py", file=sys.stderr)
            raise SystemExit(1)
        return
    PAGE.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
