"""Subcommands of ``esd-gym``: each module defines ``register(subparsers)`` and a handler taking parsed arguments.

To add a subcommand, add a module here and list it in :data:`COMMAND_MODULES`. The CLI imports every listed module
to build its parser, so a module imports heavy packages (torch, stable-baselines3) inside its handler, where only
the subcommand that runs pays for them.
"""

from __future__ import annotations

# Subcommand name -> module that implements it, in the order ``esd-gym --help`` lists them.
COMMAND_MODULES: dict[str, str] = {
    "data": "experiments.commands.data",
    "simulate": "experiments.commands.simulate",
    "replay": "experiments.commands.replay",
    "scenarios": "experiments.commands.scenarios",
    "train": "experiments.commands.train",
    "evaluate": "experiments.commands.evaluate",
    "compare": "experiments.commands.compare",
    "train-dlrm": "experiments.commands.train_dlrm",
    "bench": "experiments.commands.bench",
}
