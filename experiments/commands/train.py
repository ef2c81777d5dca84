"""``esd-gym train``: train a learned dispatcher with Stable-Baselines3 from a YAML config."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a learned dispatcher (MaskablePPO, PPO, A2C or DQN) from a YAML config",
        description=(
            "Train a Stable-Baselines3 agent on a scenario. The run directory runs/<name>/ receives the resolved "
            "config, checkpoints, the final model, held-out evaluations and TensorBoard logs."
        ),
    )
    parser.add_argument("--config", required=True, help="training config, e.g. configs/train/maskable_ppo.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing run of the same name first")
    parser.add_argument("--name", default=None, help="run name (default: the config's name or file stem)")
    parser.add_argument("--output-dir", default=None, help="parent of the run directory (default: the config's)")
    parser.add_argument(
        "--timesteps", type=int, default=None, help="total environment steps, replacing the config's n_timesteps"
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from esd_gym.errors import ConfigError
    from experiments.cli import console
    from experiments.train import load_train_config, train

    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    overrides = {}
    if args.name is not None:
        overrides["name"] = args.name
    if args.output_dir is not None:
        overrides["output_dir"] = args.output_dir
    if args.timesteps is not None:
        if args.timesteps <= 0:
            raise ConfigError(f"--timesteps must be positive (got {args.timesteps})")
        overrides["n_timesteps"] = args.timesteps
    config = load_train_config(args.config, overrides)
    result = train(
        config, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress, console=console
    )
    console.print(f"trained {result.num_timesteps} steps; model: {result.model_path}", markup=False)
    if result.vecnormalize_path is not None:
        console.print(f"observation statistics: {result.vecnormalize_path}", markup=False)
    console.print(f"TensorBoard: tensorboard --logdir {result.run_dir}", markup=False)
    console.print(
        f"evaluate it: esd-gym evaluate --agent {result.model_path} --scenario {config.scenario} --episodes 3",
        markup=False,
    )
    return 0
