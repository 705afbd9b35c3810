"""``python -m pneumo_core predict|evaluate``: the command-line contract other tools rely on.

predict: one JSON object per input file per line, in a stable order:
``{"file", "label", "probability", "threshold"}`` or ``{"file", "error"}``.
Exit 0 if every file was classified, 1 if any failed, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import DISCLAIMER
from .data import IMAGE_SUFFIXES, class_root, list_labelled_images
from .decode import ImageDecodeError
from .registry import ModelLoadError

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code is already 2; keep its message short
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pneumo_core", description=f"Pneumonia classifier for chest X-rays. {DISCLAIMER}")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify image files or folders (recursed)")
    predict.add_argument("--model", type=Path, default=None, help="model directory (default: the served model)")
    predict.add_argument("--threshold", type=float, default=None, help="override the model's operating threshold")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    evaluate = commands.add_parser("evaluate", help="metrics and per-image predictions for a labelled folder")
    evaluate.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="folder with NORMAL/ and PNEUMONIA/ (or test/ holding them)")
    evaluate.add_argument("--model", type=Path, default=None)
    evaluate.add_argument("--threshold", type=float, default=None)
    evaluate.add_argument("--out", type=Path, default=Path("evaluation"), help="output folder (default ./evaluation)")
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


def _read(path: Path) -> bytes | ImageDecodeError:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return ImageDecodeError("No such file.")
    except IsADirectoryError:
        return ImageDecodeError("This is a folder, not a file.")
    except OSError as error:
        return ImageDecodeError(f"The file cannot be read ({error.strerror or error}).")


def run_predict(args: argparse.Namespace) -> int:
    from .predict import Case, Predictor

    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        print("error: --threshold must be between 0 and 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        predictor = Predictor.load(args.model, args.threshold)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    files = expand_paths(args.paths)
    if not files:
        print("error: no image files found in the given folders", file=sys.stderr)
        return EXIT_USAGE
    failed = False
    for start in range(0, len(files), predictor.batch_size):
        chunk = files[start : start + predictor.batch_size]
        payloads = [_read(path) for path in chunk]
        readable = [i for i, p in enumerate(payloads) if isinstance(p, bytes)]
        results: list[ImageDecodeError | Case] = list(payloads)
        for i, case in zip(readable, predictor.classify([(str(chunk[i]), payloads[i]) for i in readable])):
            results[i] = case
        for path, result in zip(chunk, results):
            error = str(result) if isinstance(result, ImageDecodeError) else result.error
            if error:
                failed = True
                record = {"file": str(path), "error": error}
            else:
                record = {"file": str(path), "label": result.prediction.label, "probability": round(result.prediction.probability, 6),
                          "threshold": round(result.prediction.threshold, 6)}
                if result.warnings:
                    record["warnings"] = list(result.warnings)
            print(json.dumps(record), flush=True)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import format_metrics_table, predictions_frame, write_evaluation
    from .predict import Predictor, decode_canonical

    try:
        predictor = Predictor.load(args.model, args.threshold)
        listing = list_labelled_images(class_root(args.data_dir, "test"))
    except (ModelLoadError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    canonical, keep = [], []
    for index, path in enumerate(listing["path"].tolist()):
        image = decode_canonical(Path(path).read_bytes())
        if isinstance(image, ImageDecodeError):
            print(json.dumps({"file": listing["file"].iloc[index], "error": str(image)}), file=sys.stderr)
            continue
        canonical.append(image)
        keep.append(index)
    if not keep:
        print("error: none of the images could be read", file=sys.stderr)
        return EXIT_SOME_FAILED
    unreadable = len(listing) - len(keep)
    listing = listing.iloc[keep]
    logits = predictor.logits_canonical(np.stack(canonical))
    frame = predictions_frame(listing["file"].tolist(), listing["label"].to_numpy(), logits, predictor.temperature, predictor.threshold)
    metrics = write_evaluation(frame, predictor.threshold, args.out, "evaluation")
    print(f"model: {predictor.metadata.get('name')}  threshold: {predictor.threshold:.4f}  data: {args.data_dir}")
    print(format_metrics_table({"evaluation": metrics}))
    print(f"written: {args.out}/evaluation_predictions.csv, _metrics.json, _confusion.html, _roc.html, _pr.html")
    if unreadable:
        print(f"{unreadable} unreadable file(s) skipped (listed on stderr)")
    return EXIT_SOME_FAILED if unreadable else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_predict(args) if args.command == "predict" else run_evaluate(args)
