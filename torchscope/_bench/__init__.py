"""The reference fine-tune benchmark behind ``torchscope bench``, one module per job.

- :mod:`~torchscope._bench.schema`: :class:`BenchConfig` (the settings) and :class:`BenchResult`
  (what was measured, with its verdicts), plain data, no torch;
- :mod:`~torchscope._bench.stats` and :mod:`~torchscope._bench.efficiency`: the arithmetic, no torch;
- :mod:`~torchscope._bench.device` and :mod:`~torchscope._bench.environment`: device, process
  group, clock, memory, matmul peak, and where it ran;
- :mod:`~torchscope._bench.data`: synthetic batches or an ImageFolder;
- :mod:`~torchscope._bench.loops`: the training step, the baseline loop, warm-up, FLOPs;
- :mod:`~torchscope._bench.batchsize`: ``--batch-size auto``;
- :mod:`~torchscope._bench.plan`, :mod:`~torchscope._bench.mode` and :mod:`~torchscope._bench.run`:
  checking the settings, one mode's run, and the entry points.

Import each name from the module that defines it: this file re-exports nothing, so importing the
schema (to render or compare saved results) does not import torch.
"""
