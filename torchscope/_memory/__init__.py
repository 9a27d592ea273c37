"""The memory predictor: the peak of a training step under fake tensors, its breakdown, ``--fit``.

One module per job: :mod:`.storage` (the storage-tracking dispatch mode), :mod:`.step` (the step and
its options), :mod:`.fake_step` (running it on fake weights with observing hooks), :mod:`.estimate` (the
report), :mod:`.fit` (the batch-size search), :mod:`.cards` (GPU sizes and the margin),
:mod:`.schema` (the result types, no torch), :mod:`.truth` (the real-CPU measurement it is checked
against). Byte sizes (``--fit 24GiB``) are parsed by the one grammar module, :mod:`torchscope._parsing`.
Import each name from the module that defines it: this file re-exports nothing, so the schema (and the
renderer that reads it) import without torch.
"""
