"""PEFT (LoRA) models: which params are adapters, what ``check_step`` adds for them, the closest
module names for a target that matches none, and merge equivalence. peft is never imported here:
everything is read from the model's own attributes.

- :mod:`.layers`: adapter vs base params, LoRA pairs, task heads;
- :mod:`.review`: the first-step ``lora_A`` note and the PEFT causes of ``check_step``;
- :mod:`.targets`: ``target_modules`` that match no module, with the closest names;
- :mod:`.merge`: ``merge_and_unload()`` equivalence, and dropout left on.
"""
