"""The rooms behind :mod:`torchscope.testing` (import the helpers from there, not from here).

- :mod:`.messages`: the plain-text tables, violation rendering (causes grouped, said once) and the
  hand-off of each check's record to the pytest plugin;
- :mod:`.tensors`: the tensors under check (params and buffers, aliases resolved) and calling the model;
- :mod:`.step`: the assertions that run the user's step (``assert_step_ok``, ``assert_frozen``,
  ``expect_frozen``, ``assert_trainable_updated``);
- :mod:`.gradients`: ``assert_grads_finite``, ``assert_no_unused_params``;
- :mod:`.structure`: counts, modes and output shapes;
- :mod:`.recipes`: the Karpathy-recipe checks (batch independence, loss at init, overfit one batch);
- :mod:`.adapters`: the room for the Hugging Face / PEFT assertions.
"""
