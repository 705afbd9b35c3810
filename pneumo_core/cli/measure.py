"""``evaluate``, ``calibrate``, ``sanity``, ``quantize``, ``density`` and ``compare``: measure a model on labelled films."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pneumo_core.cli.main import EXIT_OK, EXIT_SOME_FAILED, UsageError, expand_paths, folder_progress, read_file
from pneumo_core.config import locations, site_sample_dir
from pneumo_core.evaluation.reports import format_metrics_table, predictions_frame, write_evaluation
from pneumo_core.evaluation.scoring import FolderScores, internal_test_films, labelled_folder_films, score_labelled_folder
from pneumo_core.operating_point.calibration import calibrate
from pneumo_core.operating_point.fit import fit_operating_point
from pneumo_core.operating_point.promises import AT_MOST, FIGURES
from pneumo_core.operating_point.rules import ReferralRule, Rule
from pneumo_core.operating_point.samples import read_manifest, sample_from_folder, sample_from_records
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.model_dir import read_metadata
from pneumo_core.store.profiles import SiteProfile, activate, check_name, save_profile


def _report_unreadable(scores: FolderScores) -> None:
    for name, reason in scores.errors.items():
        print(json.dumps({"file": name, "error": reason}), file=sys.stderr)


def run_evaluate(args: argparse.Namespace) -> int:
    predictor = Predictor.load(args.model, args.threshold, args.runtime, args.operating_point)
    with folder_progress(args.quiet) as progress:
        scores = score_labelled_folder(predictor, args.data_dir, progress)
    _report_unreadable(scores)
    if not len(scores):
        print("error: none of the images could be read", file=sys.stderr)
        return EXIT_SOME_FAILED
    frame = predictions_frame(scores.files, scores.labels, scores.logits, predictor.temperature, predictor.threshold)
    metrics = write_evaluation(frame, predictor.threshold, args.out, "evaluation", predictor.band)
    print(
        f"model: {predictor.metadata.get('name')}  operating point: {predictor.operating_point}  "
        f"threshold: {predictor.threshold:.4f}  data: {args.data_dir}"
    )
    print(format_metrics_table({"evaluation": metrics}))
    low, high = predictor.band
    print(referral_line(metrics, f"{low:.4f}-{high:.4f}"))
    print(
        f"written: {args.out}/evaluation_predictions.csv, _metrics.json, _confusion.html, _roc.html, _pr.html, "
        "_risk_coverage.html"
    )
    if scores.errors:
        print(f"{len(scores.errors)} unreadable file(s) skipped (listed on stderr)")
    return EXIT_SOME_FAILED if scores.errors else EXIT_OK


def run_calibrate(args: argparse.Namespace) -> int:
    model_dir = args.model or locations().model_dir
    rule, band_rule = Rule.parse(args.rule), ReferralRule.parse(args.band)
    if args.site is not None:
        check_name(args.site)
    if (args.data_dir is None) == (args.scores is None):
        raise UsageError("give a DATA_DIR of films or --scores FILE.jsonl (one of them)")
    if args.next_films is not None and args.next_films < 2:
        raise UsageError("--next-films must be at least 2")
    manifest = read_manifest(args.patients) if args.patients else None
    if args.scores is not None:
        sample, errors = sample_from_records(read_text_lines(args.scores), manifest), {}
        metadata, reference, runtime = read_metadata(model_dir) if args.site else {}, None, "scores file"
    else:
        predictor = Predictor.load(model_dir, runtime=args.runtime, operating_point="validation")
        with folder_progress(args.quiet) as progress:
            scores = score_labelled_folder(predictor, args.data_dir, progress)
        _report_unreadable(scores)
        sample, errors = sample_from_folder(scores, manifest), scores.errors
        metadata, runtime = predictor.metadata, predictor.runtime
        reference = predictor.density.reference if predictor.density else None
    exit_code = EXIT_SOME_FAILED if errors else EXIT_OK
    point = fit_operating_point(sample.labels, sample.logits, rule, band_rule, args.next_films, patients=sample.patients)
    if args.json:
        print(json.dumps(point.as_json()))
    if args.site is None:  # the operating point only: nothing written
        if not args.json:
            print("\n".join([promise_table(point.promise.as_dict()), *point.shortfalls, *sample.notes]))
        return exit_code
    profile = calibrate(sample, metadata, args.site, rule, band_rule, reference, runtime, next_films=args.next_films)
    path = save_profile(profile, model_dir)
    if args.activate:
        activate(model_dir, profile.name)
    if not args.json:
        print(profile_report(profile))
        print(f"written: {path}" + ("  (active: every entry point now uses it by default)" if args.activate else ""))
    return exit_code


def read_text_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path} ({getattr(error, 'strerror', None) or error})") from None


def profile_report(profile: SiteProfile) -> str:
    """What ``calibrate`` prints about a fitted profile."""
    low, high = profile.band
    lines = [
        f"model: {profile.model_name}  site: {profile.name}  films: {profile.n} ({profile.n_normal} NORMAL, "
        f"{profile.n_pneumonia} PNEUMONIA; patients {profile.patients.get('NORMAL')} / {profile.patients.get('PNEUMONIA')})"
        f"  rule: {profile.rule}  band: {profile.band_rule}"
        + (f"  withheld as not an X-ray: {profile.withheld}" if profile.withheld else ""),
        f"temperature {profile.temperature:.4f}  threshold {profile.threshold:.4f}  referral band {low:.4f}-{high:.4f}"
        f"  (scores of the {profile.runtime} runtime)",
        promise_table(profile.promise),
        *profile.shortfalls,
        *profile.notes,
    ]
    if profile.simulation:
        lines.append(simulation_line(profile.simulation))
    lines += [profile_table(profile), referral_line(profile.referral, f"{low:.4f}-{high:.4f} on the sample"), profile.note]
    return "\n".join(lines)


def promise_table(promise: dict) -> str:
    """The promise as a text table: each figure, at least or at most."""
    lines = [f"promise for the site's next {promise['next_films']} films ({promise['confidence']:.0%} confidence each):"]
    for name in FIGURES:
        side = "at most " if name in AT_MOST else "at least"
        lines.append(f"  {name.replace('_', ' '):<26}{side} {promise[name]:.3f}")
    return "\n".join(lines)


def simulation_line(simulation: dict) -> str:
    """How often the promises held on the simulated sites, in one line."""
    kept = min(figure["kept"] for figure in simulation["figures"].values())
    return (
        f"checked on {simulation['sites']} simulated sites of this size (drawn by patient): every promise kept in at "
        f"least {kept:.1%} of them"
    )


def profile_table(profile: SiteProfile) -> str:
    """The profile's metrics with their intervals (by patient) beside the validation operating point's, as a text
    table."""
    validation = profile.validation_operating_point
    lines = [f"{'metric':<12}{'on the sample':>16}{'95% interval':>18}{'validation point':>18}"]
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc"):
        low, high = profile.intervals[key]
        lines.append(f"{key:<12}{profile.metrics[key]:>16.4f}{f'{low:.3f}-{high:.3f}':>18}{validation[key]:>18.4f}")
    for key in ("tp", "fp", "tn", "fn"):
        lines.append(f"{key:<12}{profile.metrics[key]:>16d}{'':>18}{validation[key]:>18d}")
    lines.append("intervals by patient: exact (Clopper-Pearson) for proportions, patient bootstrap for ROC AUC")
    return "\n".join(lines)


def referral_line(referral: dict, band: str) -> str:
    """The referral band's share referred and decided films' sensitivity and specificity, in one line."""
    return (
        f"referral band {band}: {referral['referred']:.1%} referred ({referral['refer']} films), decided films' "
        f"sensitivity {referral['decided_sensitivity']:.3f}, specificity {referral['decided_specificity']:.3f}"
    )


def sanity_files(args: argparse.Namespace, model_dir: Path) -> list[Path]:
    """The files the sanity check explains: the given paths, or the model's internal-test split from its manifest."""
    if args.paths:
        files = expand_paths(args.paths)
    else:
        files = [Path(path) for path in internal_test_films(model_dir, args.data_dir or locations().data_dir)["path"]]
    if len(files) > args.images:
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, args.images)]
    return files


def run_sanity(args: argparse.Namespace) -> int:
    from pneumo_core.common.preprocess import intensity_mode, model_view
    from pneumo_core.evaluation.saliency_sanity import cascading_randomization, results_json, results_table  # TensorFlow
    from pneumo_core.serving.loading import decode_canonical
    from pneumo_core.store.model_dir import load_model_dir

    model_dir = args.model or locations().model_dir
    model, metadata = load_model_dir(model_dir)
    images = []
    for path in sanity_files(args, model_dir):
        payload = read_file(path)
        image = decode_canonical(payload) if isinstance(payload, bytes) else payload
        if isinstance(image, np.ndarray):
            images.append(image)
    if not images:
        raise UsageError("none of the images could be read (is --data-dir right?)")
    viewed = model_view(np.stack(images), intensity_mode(metadata))  # as the model sees them
    results = cascading_randomization(model, int(metadata["input_size"]), viewed)
    print(f"model: {metadata.get('name')}  images: {len(images)}  Grad-CAM vs the trained model's maps")
    print(results_table(results))
    if args.out:
        args.out.write_text(
            json.dumps({"model": metadata.get("name"), "images": len(images), "stages": results_json(results)}, indent=2)
        )
    return EXIT_OK


def run_quantize(args: argparse.Namespace) -> int:
    from pneumo_core.evaluation.int8_check import RULE, check_int8

    model_dir = args.model or locations().model_dir
    sets = {"internal test": internal_test_films(model_dir, args.data_dir or locations().data_dir)}
    sets.update({f"site {folder.name}": labelled_folder_films(folder) for folder in args.site})
    with folder_progress(args.quiet) as progress:
        check = check_int8(model_dir, sets, progress)
    print(f"operating point {check['operating_point']} (threshold {check['threshold']:.4f}); rule: {RULE}")
    for name, values in check["sets"].items():
        print(
            f"{name}: {values['films']} films, verdicts agree {values['verdict_agreement']:.2%}, ROC AUC "
            f"{values['auc_float32']:.4f} -> {values['auc_int8']:.4f} ({values['auc_change']:+.4f}), max change in "
            f"probability {values['max_probability_change']:.4f}, warnings agree {values['warning_agreement']:.2%}"
        )
    print("the int8 copy serves (runtime auto)" if check["serves"] else "the rule does not hold: float32 keeps serving")
    return EXIT_OK


def run_density(args: argparse.Namespace) -> int:
    from pneumo_core.evaluation.scoring import manifest_films
    from pneumo_core.serving.ood import COMPONENTS, CROP_FRACTION, FeatureDensity, reference_features
    from pneumo_core.store.model_dir import record_in_metadata

    model_dir = args.model or locations().model_dir
    predictor = Predictor.load(model_dir, runtime=args.runtime)
    data_dir = args.data_dir or locations().data_dir
    films = {split: manifest_films(model_dir, data_dir, split)["path"].tolist() for split in ("train", "val")}
    features = [reference_features(films[split], predictor.forward) for split in ("train", "val")]
    density = FeatureDensity.fit(*features, components=COMPONENTS)
    density.save(model_dir)
    reference = {
        "runtime": predictor.runtime,
        "films": {split: len(paths) for split, paths in films.items()},
        "views": f"each film as stored and once cropped (each edge trimmed by up to {CROP_FRACTION:.0%})",
        "features": f"the last block pooled over the film and each quadrant, {COMPONENTS} principal components",
        "limit": density.limit,
    }
    record_in_metadata(model_dir, ood_reference=reference)
    print(
        f"not-an-X-ray reference refitted on {predictor.runtime}: {len(films['train'])} training films, limit "
        f"{density.limit:.1f} (99th percentile of {len(films['val'])} validation films, as stored and cropped)"
    )
    return EXIT_OK


def run_compare(args: argparse.Namespace) -> int:
    from pneumo_core.evaluation.comparison import compare_models
    from pneumo_core.store.model_dir import record_in_metadata

    reference = args.model or locations().model_dir
    site = args.site or site_sample_dir()
    result = compare_models(reference, args.candidate, site, args.data_dir or locations().data_dir)
    record_in_metadata(args.candidate, comparison=result)
    for name in ("site", "internal"):
        difference = result[name]
        low, high = difference["interval"]
        print(
            f"{name}: ROC AUC difference {difference['difference']:+.4f} (one-sided 95% bound "
            f"{difference['lower_bound']:+.4f}; 95% interval {low:+.4f} to {high:+.4f}; {difference['films']} films of "
            f"{difference['patients']} patients)"
        )
    print(f"rule: {result['rule']}")
    print(f"{'passes' if result['passes'] else 'does not pass'} against {result['reference_name']}: recorded in {args.candidate}")
    return EXIT_OK
