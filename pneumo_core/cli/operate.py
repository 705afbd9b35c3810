"""``monitor``, ``promote``, ``rollback``, ``challenger`` and ``export-tflite``: operate a deployed model."""

from __future__ import annotations

import argparse
import json
import sys

from pneumo_core.cli.main import EXIT_OK, EXIT_SOME_FAILED, UsageError
from pneumo_core.config import locations
from pneumo_core.operations.monitor import drift_report, model_window, parse_since, validation_reference
from pneumo_core.operations.monitoring_store import StoreError
from pneumo_core.operations.promotion import promote_version, roll_back_served
from pneumo_core.operations.shadow import shadow_report
from pneumo_core.store.model_dir import read_metadata


def run_monitor(args: argparse.Namespace) -> int:
    since = parse_since(args.since)
    directory = args.model or locations().model_dir
    metadata = read_metadata(directory)
    try:
        window, others = model_window(since, metadata.get("model_sha256"), args.db)  # the reference is this model's
        shadow = shadow_report(since, metadata.get("model_sha256"), args.db)
    except StoreError as error:
        print(error, file=sys.stderr)
        return EXIT_SOME_FAILED
    report = {
        "model": metadata.get("name"),
        "since": since,
        "other_models_answers": others,
        **drift_report(window, *validation_reference(directory)),
        "shadow": shadow.as_json(),
    }
    if args.json:
        print(json.dumps(report))
        return EXIT_OK
    drift = report["drift"]
    print(f"model: {report['model']}  answers: {report['answers']}  verdicts: {report['verdicts']}")
    print(f"decisions: {report['decisions']}")
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
    from pneumo_core.store.mlflow_registry import set_challenger

    if args.clear == bool(args.version):
        raise UsageError("give a VERSION, or --clear for no challenger")
    try:
        set_challenger(None if args.clear else args.version)
    except Exception as error:  # noqa: BLE001 - MLflow raises many kinds: say what the store said, once
        raise UsageError(f"the challenger was not set: {str(error).splitlines()[0]}") from None
    print(json.dumps({"challenger": None if args.clear else args.version}))
    return EXIT_OK


def run_promote(args: argparse.Namespace) -> int:
    print(json.dumps(promote_version(args.version, "python -m pneumo_core promote")))
    return EXIT_OK


def run_rollback(_: argparse.Namespace) -> int:
    print(json.dumps(roll_back_served("python -m pneumo_core rollback")))
    return EXIT_OK


def run_export_tflite(args: argparse.Namespace) -> int:
    from pneumo_core.modeling.saving import add_tflite  # TensorFlow: only for this command

    path = add_tflite(args.model or locations().model_dir)
    print(f"written: {path} ({path.stat().st_size / 1e6:.1f} MB) and its SHA-256 in the metadata")
    return EXIT_OK
