"""The PEFT (LoRA) checks: what ``check_step`` adds for an adapter model, and merge equivalence.

What a PEFT model is made of (adapter vs base params, LoRA pairs, heads, unmatched
``target_modules``) is read one floor down, in :mod:`torchscope._adapters`; the numerics and
``Violation`` these checks share with the step check come from :mod:`torchscope._checkparts`.
peft is never imported here: everything is read from the model's own attributes.

- :mod:`.review`: the first-step ``lora_A`` note and the PEFT causes of ``check_step``;
- :mod:`.merge`: ``merge_and_unload()`` equivalence, and dropout left on.
"""
