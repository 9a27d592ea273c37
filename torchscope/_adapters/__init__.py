"""PEFT adapters and quantized weights, read from the model's own attributes (peft is never imported).

- :mod:`.layers`: adapter vs base params, LoRA pairs, task heads, each adapter described for
  ``tree``, and the logical size of packed 4-bit weights;
- :mod:`.targets`: ``target_modules`` that match no module, with the closest names.

The checks built on these (the first-step review and merge equivalence) live above, in
:mod:`torchscope._peft`; the loader and the tree read adapters from here without importing them.
Import each name from the module that defines it: this file re-exports nothing.
"""
