"""`python -m repl.cli`: the `textgen` command (training workers under torchrun start this way too)."""

from . import run

run()
