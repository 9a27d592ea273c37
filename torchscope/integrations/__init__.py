"""Integrations with other libraries, each an optional extra imported only when used.

- :mod:`torchscope.integrations.lightning`: the ``CheckFreeze`` callback for Lightning
  (``pip install 'torchscope[lightning]'``).

Importing this package imports none of them.
"""
