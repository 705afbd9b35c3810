"""``python -m pneumo_core``: the command-line contract other tools rely on.

:mod:`~pneumo_core.cli.main` parses and dispatches; each command group lives in its own module and imports what it
needs when it runs: :mod:`~pneumo_core.cli.answer` (predict, explain), :mod:`~pneumo_core.cli.measure` (evaluate,
calibrate, sanity, quantize), :mod:`~pneumo_core.cli.operate` (monitor, promote, rollback, challenger, export-tflite).
``predict`` imports nothing heavier than :mod:`pneumo_core.serving`. May import every other package:
:mod:`pneumo_core.common`, :mod:`pneumo_core.store`, :mod:`pneumo_core.serving`, :mod:`pneumo_core.modeling`,
:mod:`pneumo_core.evaluation`, :mod:`pneumo_core.operating_point` and :mod:`pneumo_core.operations`.
"""
