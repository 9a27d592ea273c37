"""Integrations with other libraries, each an optional extra imported only when used.

- :mod:`torchscope.integrations.lightning`: the ``FreezeGuard`` (watch the real run) and
  ``CheckFreeze`` (probe a step) callbacks for Lightning (``pip install 'torchscope[lightning]'``).
- :mod:`torchscope.integrations.transformers`: the ``FreezeGuard`` ``TrainerCallback`` for the
  Hugging Face ``Trainer`` (``pip install 'torchscope[hf]'``).

Both only map their framework's events onto :func:`torchscope.guard`; Accelerate and plain loops
use ``torchscope.guard`` directly. Importing this package imports none of them.
"""
