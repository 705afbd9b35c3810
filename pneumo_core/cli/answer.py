"""``predict`` and ``explain``: answer image files or folders with the served model (or one given)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pneumo_core.cli.main import EXIT_OK, EXIT_SOME_FAILED, UsageError, expand_paths, read_file
from pneumo_core.serving.answers import Case, answer_record
from pneumo_core.serving.cams import METHOD_NAMES
from pneumo_core.serving.decode import ImageDecodeError
from pneumo_core.serving.predictor import Predictor


def loaded_predictor_and_files(args: argparse.Namespace) -> tuple[Predictor, list[Path]]:
    """The predictor and the input files of ``predict`` and ``explain``."""
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UsageError("--threshold must be between 0 and 1")
    predictor = Predictor.load(args.model, args.threshold, args.runtime, args.operating_point)
    files = expand_paths(args.paths)
    if not files:
        raise UsageError("no image files found in the given folders")
    return predictor, files


def answers(predictor: Predictor, files: list[Path], with_maps: bool) -> Iterator[tuple[Path, dict, Case | None]]:
    """``(path, record, case or None)`` per file, in order, classified in batches."""
    for start in range(0, len(files), predictor.batch_size):
        chunk = files[start : start + predictor.batch_size]
        payloads = [read_file(path) for path in chunk]
        readable = [i for i, p in enumerate(payloads) if isinstance(p, bytes)]
        results: list[ImageDecodeError | Case] = list(payloads)
        for i, case in zip(readable, predictor.classify([(str(chunk[i]), payloads[i]) for i in readable], with_maps)):
            results[i] = case
        for path, result in zip(chunk, results):
            if isinstance(result, ImageDecodeError):
                yield path, {"file": str(path), "error": str(result)}, None
            else:
                yield path, answer_record(str(path), result, predictor.operating_point, predictor.promise), result


def run_predict(args: argparse.Namespace) -> int:
    failed = False
    for _, record, _ in answers(*loaded_predictor_and_files(args), with_maps=False):
        failed = failed or "error" in record
        print(json.dumps(record), flush=True)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _unique_stem(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``… for inputs of the same name in different folders."""
    candidate, number = stem, 1
    while candidate in taken:
        number += 1
        candidate = f"{stem}-{number}"
    taken.add(candidate)
    return candidate


def run_explain(args: argparse.Namespace) -> int:
    from PIL import Image

    from pneumo_core.serving.overlay import overlay

    predictor, files = loaded_predictor_and_files(args)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {args.out} ({error.strerror or error})") from None
    method, failed, taken = METHOD_NAMES[args.method], False, set()
    for path, record, case in answers(predictor, files, with_maps=True):
        failed = failed or "error" in record
        if case is not None and case.verdict is not None:  # no map without a verdict (unreadable, not an X-ray)
            explained = case.verdict.label if args.explained_class == "predicted" else args.explained_class
            heat = predictor.explain(case.canonical[None], [explained], method, [case.block])[0]
            stem = _unique_stem(f"{path.stem}.{args.method}.{explained}", taken)
            Image.fromarray(overlay(case.canonical, heat)).save(args.out / f"{stem}.png")
            record = {**record, "method": args.method, "explained_class": explained, "overlay": str(args.out / f"{stem}.png")}
            if args.raw:
                np.save(args.out / f"{stem}.npy", heat.astype(np.float32))
                record["map"] = str(args.out / f"{stem}.npy")
        print(json.dumps(record), flush=True)
    return EXIT_SOME_FAILED if failed else EXIT_OK
