"""What the step check and the audits it runs share, below all of them.

``torchscope._check`` composes the step check from these parts and from the audits that use them
(the optimizer audit :mod:`torchscope._optaudit`, the distributed gather :mod:`torchscope._distributed`,
the PEFT review :mod:`torchscope._peft`); none of those imports ``torchscope._check``, so this package
is the floor they all stand on and nothing here imports any of them.

- :mod:`.report`: the result types (``Violation``, ``ViolationGroup``, ``StepCheck``);
- :mod:`.config`: the reference step's settings (``ReferenceStep``);
- :mod:`.grouping`: violations grouped by cause;
- :mod:`.numerics`: the comparison numerics (host floats, max abs diffs, bit equality);
- :mod:`.plan`: what is under check (the tensors, by qualified name);
- :mod:`.probe`: what the optimizer saw.

Import the module that defines a name (``from torchscope._checkparts.report import Violation``):
this file re-exports nothing, so importing one part costs only that part.
"""
