"""``python -m pneumo_core predict|explain|evaluate|calibrate|sanity|monitor|promote|rollback|challenger|export-tflite|
quantize``: the command-line contract other tools rely on.

predict: one JSON object per input file per line, in a stable order:
``{"file", "label", "probability", "threshold", "operating_point"}`` (plus ``"warnings"`` when any; ``label`` and
``probability`` are null when the film is clearly not a chest X-ray) or ``{"file", "error"}``.
explain: the same records, each with ``"method"``, ``"explained_class"`` and ``"overlay"`` (the PNG written), plus
``"map"`` (a ``.npy`` of the raw map) with ``--raw``; a film without a verdict gets no map.
Exit 0 if every file was classified, 1 if any failed, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import CLASS_NAMES, DISCLAIMER
from .cams import GRADCAM, GRADCAM_PLUS_PLUS, SCORECAM
from .decode import IMAGE_SUFFIXES, ImageDecodeError
from .predict import RUNTIMES
from .registry import ModelLoadError
from .site import DEFAULT_RULE

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
CLI_METHODS = {"gradcam": GRADCAM, "gradcam++": GRADCAM_PLUS_PLUS, "scorecam": SCORECAM}
"""The ``--method`` names (as the REST API's) and the methods they run."""
OPERATING_POINT_HELP = "validation | site:NAME (default: the model's active site profile, else validation)"


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
    explain.add_argument("--method", choices=sorted(CLI_METHODS), default="gradcam", help="default gradcam")
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
    calibrate = commands.add_parser("calibrate", help="fit a site's operating point on its labelled films (a site profile)")
    calibrate.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="folder with NORMAL/ and PNEUMONIA/")
    calibrate.add_argument("--site", required=True, help="the profile's name (letters, digits, . _ -)")
    calibrate.add_argument("--model", type=Path, default=None)
    calibrate.add_argument("--rule", default=DEFAULT_RULE, help=f"sensitivity:S | cost:R | youden (default {DEFAULT_RULE})")
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
    monitor.add_argument("--db", type=Path, default=None, help="the store (default $PNEUMO_MONITOR_DB or runs/monitor.db)")
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


def _read(path: Path) -> bytes | ImageDecodeError:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return ImageDecodeError("No such file.")
    except IsADirectoryError:
        return ImageDecodeError("This is a folder, not a file.")
    except OSError as error:
        return ImageDecodeError(f"The file cannot be read ({error.strerror or error}).")


def _predictor_and_files(args: argparse.Namespace):
    """``(predictor, files)`` for ``predict`` and ``explain``, or the exit code after a usage error's message."""
    from .predict import Predictor

    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        print("error: --threshold must be between 0 and 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        predictor = Predictor.load(args.model, args.threshold, args.runtime, args.operating_point)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    files = expand_paths(args.paths)
    if not files:
        print("error: no image files found in the given folders", file=sys.stderr)
        return EXIT_USAGE
    return predictor, files


def _answers(predictor, files: list[Path], with_maps: bool):
    """``(path, record, case or None)`` per file, in order, classified in batches."""
    from .predict import Case, answer_record

    for start in range(0, len(files), predictor.batch_size):
        chunk = files[start : start + predictor.batch_size]
        payloads = [_read(path) for path in chunk]
        readable = [i for i, p in enumerate(payloads) if isinstance(p, bytes)]
        results: list[ImageDecodeError | Case] = list(payloads)
        for i, case in zip(readable, predictor.classify([(str(chunk[i]), payloads[i]) for i in readable], with_maps)):
            results[i] = case
        for path, result in zip(chunk, results):
            if isinstance(result, ImageDecodeError):
                yield path, {"file": str(path), "error": str(result)}, None
            else:
                yield path, answer_record(str(path), result, predictor.operating_point), result


def run_predict(args: argparse.Namespace) -> int:
    loaded = _predictor_and_files(args)
    if isinstance(loaded, int):
        return loaded
    failed = False
    for _, record, _ in _answers(*loaded, with_maps=False):
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

    from .saliency import overlay

    loaded = _predictor_and_files(args)
    if isinstance(loaded, int):
        return loaded
    predictor, files = loaded
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: cannot create {args.out} ({error.strerror or error})", file=sys.stderr)
        return EXIT_USAGE
    method, failed, taken = CLI_METHODS[args.method], False, set()
    for path, record, case in _answers(predictor, files, with_maps=True):
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


def run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import format_metrics_table, predictions_frame, write_evaluation
    from .predict import Predictor
    from .scoring import score_labelled_folder

    try:
        predictor = Predictor.load(args.model, args.threshold, args.runtime, args.operating_point)
        with folder_progress(args.quiet) as progress:
            scores = score_labelled_folder(predictor, args.data_dir, progress)
    except (ModelLoadError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    for name, reason in scores.errors.items():
        print(json.dumps({"file": name, "error": reason}), file=sys.stderr)
    if not len(scores):
        print("error: none of the images could be read", file=sys.stderr)
        return EXIT_SOME_FAILED
    frame = predictions_frame(scores.files, scores.labels, scores.logits, predictor.temperature, predictor.threshold)
    metrics = write_evaluation(frame, predictor.threshold, args.out, "evaluation")
    print(
        f"model: {predictor.metadata.get('name')}  operating point: {predictor.operating_point}  "
        f"threshold: {predictor.threshold:.4f}  data: {args.data_dir}"
    )
    print(format_metrics_table({"evaluation": metrics}))
    print(f"written: {args.out}/evaluation_predictions.csv, _metrics.json, _confusion.html, _roc.html, _pr.html")
    if scores.errors:
        print(f"{len(scores.errors)} unreadable file(s) skipped (listed on stderr)")
    return EXIT_SOME_FAILED if scores.errors else EXIT_OK


def run_calibrate(args: argparse.Namespace) -> int:
    from .config import served_model_dir
    from .predict import Predictor
    from .scoring import score_labelled_folder
    from .site import ProfileError, Rule, activate, calibrate, check_name, describe_cross_validated, save_profile

    model_dir = args.model or served_model_dir()
    try:
        rule = Rule.parse(args.rule)
        check_name(args.site)
        predictor = Predictor.load(model_dir, runtime=args.runtime, operating_point="validation")
        with folder_progress(args.quiet) as progress:
            scores = score_labelled_folder(predictor, args.data_dir, progress)
        reference = predictor.density.reference if predictor.density else None
        profile = calibrate(scores, predictor.metadata, args.site, rule, reference, predictor.runtime)
        path = save_profile(profile, model_dir)
        if args.activate:
            activate(model_dir, profile.name)
    except (ModelLoadError, FileNotFoundError, ProfileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    for name, reason in scores.errors.items():
        print(json.dumps({"file": name, "error": reason}), file=sys.stderr)
    print(
        f"model: {profile.model_name}  site: {profile.name}  films: {profile.n} ({profile.n_normal} NORMAL, "
        f"{profile.n_pneumonia} PNEUMONIA)  rule: {profile.rule}"
    )
    print(f"temperature {profile.temperature:.4f}  threshold {profile.threshold:.4f}  (scores of the {profile.runtime} runtime)")
    print(_profile_table(profile))
    print(profile.note)
    if profile.cross_validated:
        print(describe_cross_validated(profile.cross_validated))
    print(f"written: {path}" + ("  (active: every entry point now uses it by default)" if args.activate else ""))
    return EXIT_SOME_FAILED if scores.errors else EXIT_OK


def _profile_table(profile) -> str:
    validation = profile.validation_operating_point
    lines = [f"{'metric':<12}{'site profile':>16}{'95% interval':>18}{'validation point':>18}"]
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc"):
        low, high = profile.intervals[key]
        lines.append(f"{key:<12}{profile.metrics[key]:>16.4f}{f'{low:.3f}-{high:.3f}':>18}{validation[key]:>18.4f}")
    for key in ("tp", "fp", "tn", "fn"):
        lines.append(f"{key:<12}{profile.metrics[key]:>16d}{'':>18}{validation[key]:>18d}")
    return "\n".join(lines)


def sanity_files(args: argparse.Namespace, model_dir: Path) -> list[Path]:
    """The files the sanity check explains: the given paths, or the model's internal-test split from its manifest."""
    if args.paths:
        files = expand_paths(args.paths)
    else:
        from .config import default_data_dir
        from .scoring import internal_test_films  # pandas and scikit-learn: only the commands that read a labelled folder

        files = [Path(path) for path in internal_test_films(model_dir, args.data_dir or default_data_dir())["path"]]
    if len(files) > args.images:
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, args.images)]
    return files


def run_sanity(args: argparse.Namespace) -> int:
    from .config import served_model_dir
    from .predict import decode_canonical
    from .preprocess import intensity_mode, model_view
    from .registry import load_model_dir
    from .sanity import cascading_randomization, results_json, results_table

    model_dir = args.model or served_model_dir()
    try:
        model, metadata = load_model_dir(model_dir)
        files = sanity_files(args, model_dir)
    except (ModelLoadError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    images = []
    for path in files:
        payload = _read(path)
        image = decode_canonical(payload) if isinstance(payload, bytes) else payload
        if isinstance(image, np.ndarray):
            images.append(image)
    if not images:
        print("error: none of the images could be read (is --data-dir right?)", file=sys.stderr)
        return EXIT_USAGE
    viewed = model_view(np.stack(images), intensity_mode(metadata))  # as the model sees them
    results = cascading_randomization(model, int(metadata["input_size"]), viewed)
    print(f"model: {metadata.get('name')}  images: {len(images)}  Grad-CAM vs the trained model's maps")
    print(results_table(results))
    if args.out:
        args.out.write_text(
            json.dumps({"model": metadata.get("name"), "images": len(images), "stages": results_json(results)}, indent=2)
        )
    return EXIT_OK


def run_export_tflite(args: argparse.Namespace) -> int:
    from .config import served_model_dir
    from .registry import add_tflite

    try:
        path = add_tflite(args.model or served_model_dir())
    except (ModelLoadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"written: {path} ({path.stat().st_size / 1e6:.1f} MB) and its SHA-256 in the metadata")
    return EXIT_OK


def run_monitor(args: argparse.Namespace) -> int:
    from .config import served_model_dir
    from .monitor import drift_report, model_window, parse_since, validation_reference
    from .registry import read_metadata
    from .shadow import shadow_report

    try:
        since = parse_since(args.since)
        directory = args.model or served_model_dir()
        metadata = read_metadata(directory)
    except (ValueError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    window, others = model_window(since, metadata.get("model_sha256"), args.db)  # the reference is this model's
    report = {
        "model": metadata.get("name"),
        "since": since,
        "other_models_answers": others,
        **drift_report(window, *validation_reference(directory)),
        "shadow": shadow_report(since, metadata.get("model_sha256"), args.db).as_json(),
    }
    if args.json:
        print(json.dumps(report))
        return EXIT_OK
    drift = report["drift"]
    print(f"model: {report['model']}  answers: {report['answers']}  verdicts: {report['verdicts']}")
    for signal in drift["signals"]:
        values = "not enough data" if signal["psi"] is None else f"PSI {signal['psi']:.3f}, KS p {signal['ks_pvalue']:.2g}"
        print(f"  {signal['name']:<17} n={signal['n']:<6} {values}{'  ← drift' if signal['alert'] else ''}")
    print(f"drift alert: {'YES' if drift['alert'] else 'no'} ({drift['rule']})")
    shadow = report["shadow"]
    if shadow["answers"]:
        print(
            f"shadow challenger {', '.join(shadow['challengers'])}: {shadow['answers']} films, agreement "
            f"{shadow['agreement']:.1%}, median latency {shadow['challenger_latency_ms']:.0f} ms "
            f"(champion {shadow['champion_latency_ms']:.0f} ms)"
        )
    return EXIT_OK


def run_challenger(args: argparse.Namespace) -> int:
    from .model_registry import set_challenger

    if args.clear == bool(args.version):
        print("error: give a VERSION, or --clear for no challenger", file=sys.stderr)
        return EXIT_USAGE
    try:
        set_challenger(None if args.clear else args.version)
    except Exception as error:  # noqa: BLE001 - MLflow raises many kinds: say what the store said, once
        print(f"error: the challenger was not set: {str(error).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"challenger": None if args.clear else args.version}))
    return EXIT_OK


def run_promote(args: argparse.Namespace) -> int:
    from .serving_changes import promote_version

    try:
        record = promote_version(args.version, "python -m pneumo_core promote")
    except (ModelLoadError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(record))
    return EXIT_OK


def run_rollback(_: argparse.Namespace) -> int:
    from .serving_changes import roll_back_served

    try:
        record = roll_back_served("python -m pneumo_core rollback")
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(record))
    return EXIT_OK


def run_quantize(args: argparse.Namespace) -> int:
    from .config import default_data_dir, served_model_dir
    from .quantize import RULE, check_int8
    from .scoring import internal_test_films, labelled_folder_films

    model_dir = args.model or served_model_dir()
    try:
        sets = {"internal test": internal_test_films(model_dir, args.data_dir or default_data_dir())}
        sets.update({f"site {folder.name}": labelled_folder_films(folder) for folder in args.site})
        with folder_progress(args.quiet) as progress:
            check = check_int8(model_dir, sets, progress)
    except (ModelLoadError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"operating point {check['operating_point']} (threshold {check['threshold']:.4f}); rule: {RULE}")
    for name, values in check["sets"].items():
        print(
            f"{name}: {values['films']} films, verdicts agree {values['verdict_agreement']:.2%}, ROC AUC "
            f"{values['auc_float32']:.4f} -> {values['auc_int8']:.4f} ({values['auc_change']:+.4f}), max change in "
            f"probability {values['max_probability_change']:.4f}, warnings agree {values['warning_agreement']:.2%}"
        )
    print("the int8 copy serves (runtime auto)" if check["serves"] else "the rule does not hold: float32 keeps serving")
    return EXIT_OK


COMMANDS = {
    "predict": run_predict,
    "explain": run_explain,
    "evaluate": run_evaluate,
    "calibrate": run_calibrate,
    "sanity": run_sanity,
    "monitor": run_monitor,
    "promote": run_promote,
    "rollback": run_rollback,
    "challenger": run_challenger,
    "export-tflite": run_export_tflite,
    "quantize": run_quantize,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)
