"""``python -m pneumo_core predict|explain|evaluate|calibrate|sanity|quantize|density|compare|monitor|promote|rollback|
challenger|export-tflite``: the parser, the dispatch and the exit codes.

predict: one JSON object per input file per line, in a stable order:
``{"file", "label", "probability", "threshold", "operating_point"}`` (plus ``"warnings"`` when any; ``label`` and
``probability`` are null when the film is clearly not a chest X-ray) or ``{"file", "error"}``.
explain: the same records, each with ``"method"``, ``"explained_class"`` and ``"overlay"`` (the PNG written), plus
``"map"`` (a ``.npy`` of the raw map) with ``--raw``; a film without a verdict gets no map.
Exit 0 if every file was classified, 1 if any failed, 2 on usage errors, 3 when the model cannot be loaded.

A command's module is imported only when that command runs, so ``predict`` loads no library that only ``evaluate``
or ``sanity`` needs.
"""

from __future__ import annotations

import argparse
import importlib
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pneumo_core import CLASS_NAMES, DISCLAIMER
from pneumo_core.common.films import IMAGE_SUFFIXES
from pneumo_core.config import SERVING_RUNTIMES as RUNTIMES
from pneumo_core.config import check_settings
from pneumo_core.operating_point.rules import DEFAULT_BAND, DEFAULT_RULE
from pneumo_core.serving.cams import METHOD_NAMES
from pneumo_core.serving.decode import MAX_FILE_BYTES, ImageDecodeError
from pneumo_core.store.model_dir import ModelLoadError

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_MODEL = 0, 1, 2, 3
OPERATING_POINT_HELP = "validation | site:NAME (default: the model's active site profile, else validation)"
COMMANDS = {
    "predict": "answer",
    "explain": "answer",
    "evaluate": "measure",
    "calibrate": "measure",
    "sanity": "measure",
    "quantize": "measure",
    "compare": "measure",
    "density": "measure",
    "monitor": "operate",
    "promote": "operate",
    "rollback": "operate",
    "challenger": "operate",
    "export-tflite": "operate",
}
"""Each command and the module of this package that runs it (``run_<command>``)."""


class UsageError(Exception):
    """A command cannot run as asked (a bad option value, an empty input, a folder it cannot write): exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code is already 2; keep its message short
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def _answering_options(command: argparse.ArgumentParser) -> None:
    """What ``predict`` and ``explain`` share: the model, its operating point and runtime, and the inputs."""
    command.add_argument("--model", type=Path, default=None, help="model directory (default: the served model)")
    command.add_argument("--threshold", type=float, default=None, help="override the model's operating threshold")
    command.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="auto (default): TFLite when the model has a copy and LiteRT is installed, else TensorFlow",
    )
    command.add_argument("--operating-point", default=None, help=OPERATING_POINT_HELP)
    command.add_argument("paths", nargs="+", type=Path, metavar="PATH")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pneumo_core", description=f"Pneumonia classifier for chest X-rays. {DISCLAIMER}")
    commands = parser.add_subparsers(dest="command", required=True)
    _answering_options(commands.add_parser("predict", help="classify image files or folders (recursed)"))
    explain = commands.add_parser("explain", help="classify and write a heat-map overlay per film")
    _answering_options(explain)
    explain.add_argument("--method", choices=sorted(METHOD_NAMES), default="gradcam", help="default gradcam")
    explain.add_argument(
        "--class", dest="explained_class", choices=("predicted", *CLASS_NAMES), default="predicted", help="default predicted"
    )
    explain.add_argument("--out", type=Path, required=True, help="folder for the overlay PNGs (created)")
    explain.add_argument("--raw", action="store_true", help="also write each raw map as .npy")
    evaluate = commands.add_parser("evaluate", help="metrics and per-image predictions for a labelled folder")
    evaluate.add_argument(
        "data_dir", type=Path, metavar="DATA_DIR", help="folder with NORMAL/ and PNEUMONIA/ (or test/ holding them)"
    )
    evaluate.add_argument("--model", type=Path, default=None)
    evaluate.add_argument("--threshold", type=float, default=None)
    evaluate.add_argument("--runtime", choices=RUNTIMES, default="auto")
    evaluate.add_argument("--operating-point", default=None, help=OPERATING_POINT_HELP)
    evaluate.add_argument("--out", type=Path, default=Path("evaluation"), help="output folder (default ./evaluation)")
    calibrate = commands.add_parser(
        "calibrate", help="fit a site's operating point on its labelled films or their scores (a site profile)"
    )
    calibrate.add_argument(
        "data_dir", type=Path, nargs="?", metavar="DATA_DIR", help="folder with NORMAL/ and PNEUMONIA/ (or give --scores)"
    )
    calibrate.add_argument(
        "--scores",
        type=Path,
        default=None,
        metavar="FILE.jsonl",
        help='score records instead of films: one JSON object a line with "logit", "truth" (NORMAL/PNEUMONIA) and '
        'optionally "patient" and "file" (predict\'s records carry "logit")',
    )
    calibrate.add_argument(
        "--patients", type=Path, default=None, metavar="CSV", help="a manifest file,patient naming each film's patient"
    )
    calibrate.add_argument(
        "--site", default=None, help="the profile's name (letters, digits, . _ -); without it nothing is written"
    )
    calibrate.add_argument("--model", type=Path, default=None)
    calibrate.add_argument(
        "--rule", default=DEFAULT_RULE, help=f"sensitivity-bound:S | sensitivity:S | cost:R | youden (default {DEFAULT_RULE})"
    )
    calibrate.add_argument(
        "--band", default=DEFAULT_BAND, help=f"the referral band: band:S/P | band:none (default {DEFAULT_BAND})"
    )
    calibrate.add_argument(
        "--next-films",
        type=int,
        default=None,
        metavar="N",
        help="how many next films the promise is about (default: the sample's size)",
    )
    calibrate.add_argument("--json", action="store_true", help="print the fitted operating point as one JSON line")
    calibrate.add_argument("--runtime", choices=RUNTIMES, default="auto")
    calibrate.add_argument("--activate", action="store_true", help="make it the default operating point of every entry point")
    for command in (evaluate, calibrate):
        command.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)")
    sanity = commands.add_parser("sanity", help="saliency sanity check: Grad-CAM under cascading weight re-initialisation")
    sanity.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="images or folders (default: internal-test images from the model's manifest)",
    )
    sanity.add_argument("--model", type=Path, default=None)
    sanity.add_argument("--data-dir", type=Path, default=None, help="Kermany-layout folder the manifest refers to")
    sanity.add_argument("--images", type=int, default=64, help="how many images, evenly spaced over the list (default 64)")
    sanity.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    monitor = commands.add_parser("monitor", help="what was answered, and whether inputs drift from validation")
    monitor.add_argument("--since", default=None, help="a duration (7d, 12h, 30m) or an ISO date (default: everything)")
    monitor.add_argument("--model", type=Path, default=None, help="model directory whose answers and reference to use")
    monitor.add_argument(
        "--db", default=None, help="the store: a SQLite file or a database URL (default $PNEUMO_MONITOR_DB or runs/monitor.db)"
    )
    monitor.add_argument("--json", action="store_true", help="print one JSON object")
    promote = commands.add_parser("promote", help="serve a registered model version (MLflow registry: champion)")
    promote.add_argument("version", help="the version of the registered model pneumo-densenet121")
    commands.add_parser("rollback", help="serve the model the current one replaced (champion ↔ previous)")
    challenger = commands.add_parser("challenger", help="name the registered version scored in the shadow (challenger)")
    challenger.add_argument("version", nargs="?", help="a version of pneumo-densenet121; omit with --clear")
    challenger.add_argument("--clear", action="store_true", help="no challenger")
    export = commands.add_parser("export-tflite", help="add the TFLite copy to a model directory saved without one")
    export.add_argument("--model", type=Path, default=None)
    quantize = commands.add_parser("quantize", help="make the int8 TFLite copy and check it against float32 (served if it holds)")
    quantize.add_argument("--model", type=Path, default=None)
    quantize.add_argument("--data-dir", type=Path, default=None, help="Kermany-layout folder of the internal test")
    quantize.add_argument(
        "--site", type=Path, action="append", default=[], metavar="FOLDER", help="a labelled site folder to check on (repeatable)"
    )
    quantize.add_argument("--quiet", action="store_true", help="no progress bar")
    density = commands.add_parser(
        "density",
        help="refit the not-an-X-ray reference on the serving runtime: the training films as stored and mildly cropped",
    )
    density.add_argument("--model", type=Path, default=None)
    density.add_argument("--data-dir", type=Path, default=None, help="Kermany-layout folder the manifest refers to")
    density.add_argument("--runtime", choices=RUNTIMES, default="auto", help="the runtime whose features serve (default auto)")
    compare = commands.add_parser(
        "compare", help="judge a candidate against the served model (paired ROC AUC, the serving rule); recorded in its metadata"
    )
    compare.add_argument("candidate", type=Path, metavar="CANDIDATE_DIR", help="the candidate's model directory")
    compare.add_argument("--model", type=Path, default=None, help="the reference (default: the served model)")
    compare.add_argument("--site", type=Path, default=None, help="a labelled site folder (default: the site sample)")
    compare.add_argument("--data-dir", type=Path, default=None, help="Kermany-layout folder of the internal test")
    return parser


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given; folders recursed (image suffixes only, sorted). Order is stable."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


@contextmanager
def folder_progress(quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a bar with rate and ETA on stderr (tqdm); silent with ``--quiet``
    or when stderr is not a terminal, so logs and pipes get no bar."""
    from tqdm import tqdm

    bar = tqdm(unit="film", file=sys.stderr, disable=quiet or not sys.stderr.isatty(), leave=False, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


def read_file(path: Path) -> bytes | ImageDecodeError:
    """A file's bytes, or why it is not read: what is not a regular file (a folder, a pipe, a device) and a file over
    :data:`~pneumo_core.serving.decode.MAX_FILE_BYTES` are refused from their ``stat``, before any byte is read."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            return ImageDecodeError("This is a folder, not a file.")
        if not stat.S_ISREG(info.st_mode):
            return ImageDecodeError("This is not a regular file (a pipe, a device or a socket): it is not read.")
        if info.st_size > MAX_FILE_BYTES:
            return ImageDecodeError(
                f"The file is too large ({info.st_size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MB)."
            )
        return path.read_bytes()
    except FileNotFoundError:
        return ImageDecodeError("No such file.")
    except OSError as error:
        return ImageDecodeError(f"The file cannot be read ({error.strerror or error}).")


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure a user can act on ends as one ``error:`` line on stderr and its exit code."""
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"pneumo_core.cli.{COMMANDS[args.command]}")
    run = getattr(module, f"run_{args.command.replace('-', '_')}")
    try:
        check_settings()  # a wrong PNEUMO_* value stops here, named, before anything runs
        return run(args)
    except ModelLoadError as error:
        return _failed(error, EXIT_MODEL)
    except (UsageError, ValueError, OSError) as error:  # FileNotFoundError, ProfileError and bad values among them
        return _failed(error, EXIT_USAGE)


def _failed(error: Exception, code: int) -> int:
    print(f"error: {error}", file=sys.stderr)
    return code
