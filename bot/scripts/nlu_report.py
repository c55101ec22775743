"""Prints intent accuracy, F1 per intent and FAQ topic accuracy from `rasa test nlu` results.

Exits non-zero when intent accuracy is below --min-accuracy.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SUMMARY_ROWS = ("accuracy", "macro avg", "weighted avg", "micro avg")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--min-accuracy", type=float, default=0.95)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table for docs/bot.md")
    args = parser.parse_args()

    intents = json.loads((args.results / "intent_report.json").read_text())
    accuracy = intents["accuracy"]
    rows = sorted((k, v) for k, v in intents.items() if k not in SUMMARY_ROWS and isinstance(v, dict))
    if args.markdown:
        print("| intent | precision | recall | F1 | examples |\n|---|---|---|---|---|")
        for name, r in rows:
            print(f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1-score']:.3f} | {r['support']} |")
    else:
        for name, r in rows:
            print(f"  {name:<20} F1 {r['f1-score']:.3f}  ({r['support']} examples)")
    selector = args.results / "response_selection_report.json"
    if selector.exists():
        print(f"FAQ topic (ResponseSelector) accuracy: {json.loads(selector.read_text())['accuracy']:.3f}")
    entities = args.results / "DIETClassifier_report.json"
    if entities.exists():
        micro = json.loads(entities.read_text()).get("micro avg", {})
        print(f"entity micro F1 (DIET): {micro.get('f1-score', 0):.3f}")
    errors_file = args.results / "intent_errors.json"
    for error in json.loads(errors_file.read_text()) if errors_file.exists() else []:
        print(f"  miss: {error['text']!r} is {error['intent']}, predicted {error['intent_prediction']['name']}")
    print(f"NLU intent accuracy: {accuracy:.3f} (goal >= {args.min_accuracy:.2f})")
    return 0 if accuracy >= args.min_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
