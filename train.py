"""Train the pneumonia classifier: a thin command line over pneumo_core.training.trainer.

Examples:
    python train.py                      # the full recipe on $PNEUMO_DATA_DIR (or ../shared/data/chest_xray)
    python train.py --smoke              # a few images, seconds: checks the whole pipeline
    python train.py --resume --run-name run-20261129-150000
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import fields

from pneumo_core.common.preprocess import INTENSITY_MODES
from pneumo_core.config import locations, quiet_tensorflow
from pneumo_core.jobs.progress import CANCELLED
from pneumo_core.jobs.request import ARCHITECTURE_NAMES, AUGMENTATION_FLAGS, Augmentation, TrainConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=defaults.data_dir, help="Kermany-layout folder (env PNEUMO_DATA_DIR)")
    parser.add_argument("--architecture", choices=ARCHITECTURE_NAMES, default=defaults.architecture, help="the base network")
    parser.add_argument(
        "--ensemble-of",
        default=defaults.ensemble_of,
        metavar="DIR,DIR",
        help="combine trained models (same split) into one served network instead of training",
    )
    parser.add_argument("--img-size", type=int, default=defaults.img_size)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="head epochs on cached features (transfer recipe)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate of the transfer recipe")
    parser.add_argument(
        "--base-weights", default=defaults.base_weights, help="auto | imagenet | none | PATH (env PNEUMO_BASE_WEIGHTS)"
    )
    parser.add_argument("--dropout", type=float, default=defaults.dropout)
    parser.add_argument("--head-units", type=int, default=defaults.head_units, help="hidden Dense units in the head (0: none)")
    parser.add_argument(
        "--feature-views", type=int, default=defaults.feature_views, help="cached feature views (1 clean + augmented)"
    )
    parser.add_argument(
        "--fine-tune-layers", type=int, default=defaults.fine_tune_layers, help="top base layers unfrozen (0: no fine-tuning)"
    )
    parser.add_argument("--fine-tune-epochs", type=int, default=defaults.fine_tune_epochs)
    parser.add_argument("--scratch-schedule", default=defaults.scratch_schedule, help="from-scratch phases size:epochs:batch,...")
    parser.add_argument("--scratch-lr", type=float, default=defaults.scratch_lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument(
        "--no-flip", dest="horizontal_flip", action="store_false", help="no horizontal flips (they move the heart)"
    )
    for name, help_text in AUGMENTATION_FLAGS.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=getattr(defaults.augmentation, name), help=help_text
        )
    parser.add_argument(
        "--intensity",
        choices=INTENSITY_MODES,
        default=defaults.intensity,
        help="what the model sees of each film's grey levels: the stretched film, or its histogram-equalised self "
        "(blind to exposure, gamma and contrast; recorded in the model's metadata and applied when it serves)",
    )
    acquisition = parser.add_mutually_exclusive_group()
    acquisition.add_argument(
        "--balance-acquisition",
        action="store_true",
        help="weight the classes alike within each acquisition group (films with one device's marker, and the rest), "
        "so the device's look stops telling the class",
    )
    acquisition.add_argument(
        "--acquisition-offset",
        action="store_true",
        help="train on the logit plus each acquisition group's log-odds of pneumonia, so the group's class ratio is "
        "explained by the offset, not learnt from the device's look; the model serves its logit alone",
    )
    parser.add_argument(
        "--target-sensitivity", type=float, default=defaults.target_sensitivity, help="threshold rule, on validation"
    )
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where runs keep checkpoints and candidate models")
    parser.add_argument("--run-name", default=defaults.run_name)
    parser.add_argument("--progress-file", default=None, help="JSON-lines progress events (default RUN_DIR/progress.jsonl)")
    parser.add_argument("--experiment", default=defaults.experiment, help="MLflow experiment name")
    parser.add_argument("--smoke", action="store_true", help="a handful of images at 64 px: the whole pipeline in seconds")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR's run from its last checkpoint")
    parser.add_argument("--promote", action="store_true", help="serve the new model if the run succeeds (previous one kept)")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's configuration from parsed arguments (those that are not ``TrainConfig`` or ``Augmentation`` fields
    steer the command)."""
    values = vars(args)
    augmentation = Augmentation(horizontal_flip=args.horizontal_flip, **{name: values[name] for name in AUGMENTATION_FLAGS})
    names = {f.name for f in fields(TrainConfig)} - {"augmentation"}
    return TrainConfig(**{key: value for key, value in values.items() if key in names}, augmentation=augmentation)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from pneumo_core.config import SettingError, check_settings

    try:
        check_settings()  # a wrong PNEUMO_* value stops the run before it starts, named
    except SettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = config_from_args(args)

    from pneumo_core.operations.promotion import promote_candidate
    from pneumo_core.training.trainer import Trainer

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # cancel → SystemExit → recorded as failed
    trainer = Trainer(config, resume=args.resume)  # a resumed run keeps the settings it started with
    try:
        candidate = trainer.run()
    except BaseException as error:  # noqa: BLE001 - every ending must leave a readable final state
        cancelled = isinstance(error, (KeyboardInterrupt, SystemExit))
        message = CANCELLED if cancelled else f"{type(error).__name__}: {error}"
        trainer.progress.emit("failed", error=message)
        if cancelled:
            logging.info("training cancelled")  # asked for: no error in the log
        else:
            logging.error("training failed: %s", message)
        return 143 if isinstance(error, SystemExit) else 1
    if not trainer.role.is_chief:
        print(json.dumps({"worker": trainer.role.index, "run_dir": str(trainer.run_dir)}))  # the chief has the model
        return 0
    print(json.dumps({"model_dir": str(candidate), "run_dir": str(trainer.run_dir)}))
    if args.promote:
        record = promote_candidate(candidate, "train.py --promote")
        print(json.dumps({"promoted": str(locations().model_dir), "registry_version": record["details"]["registry_version"]}))
    return 0


if __name__ == "__main__":
    quiet_tensorflow()
    sys.exit(main())
