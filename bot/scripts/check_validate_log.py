"""Fails on any `rasa data validate` warning except those Rasa's validator cannot see through.

Known and accepted:
- responses "not used in any story or rule" that custom actions, forms or Rasa's default fallback do
  use: the validator only looks at stories and rules, not at dispatcher.utter_message(response=...),
  utter_ask_<slot> or utter_default;
- "duplicated intents ... faq": Rasa 3.6 merges the retrieval intent from the NLU data into the domain
  and reports the faq intent declared in domain.yml as a duplicate.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

BOT_DIR = Path(__file__).resolve().parents[1]


def used_outside_stories() -> set[str]:
    code = "\n".join(p.read_text(encoding="utf-8") for p in (BOT_DIR / "actions").glob("*.py"))
    names = set(re.findall(r'response="(utter_[a-z_]+)"', code))
    domain = yaml.safe_load((BOT_DIR / "domain.yml").read_text(encoding="utf-8"))
    for form in (domain.get("forms") or {}).values():
        names |= {f"utter_ask_{slot}" for slot in form.get("required_slots", [])}
    names.add("utter_default")  # uttered by Rasa's own action_default_fallback
    if 'f"utter_faq/{topic}"' in code:
        names.add("utter_faq")  # the short FAQ texts, used when the app has no answer
    return names


def main(log_path: str) -> int:
    text = re.sub(r"\x1b\[[0-9;]*m", "", Path(log_path).read_text(encoding="utf-8", errors="replace"))
    warnings = re.findall(r"UserWarning: (.*)", text)
    allowed = used_outside_stories()
    unexpected = []
    for warning in warnings:
        unused = re.match(r"The utterance '([^']+)' is not used in any story or rule", warning)
        if unused and unused.group(1) in allowed:
            continue
        if warning.startswith("The following duplicated intents have been found") and warning.endswith(": faq"):
            continue
        unexpected.append(warning)
    errors = [line for line in text.splitlines() if " ERROR " in line]
    for problem in unexpected + errors:
        print(f"rasa data validate: {problem}")
    print(f"rasa data validate: {len(warnings)} warnings, {len(warnings) - len(unexpected)} known, "
          f"{len(unexpected)} unexpected, {len(errors)} errors")
    return 1 if unexpected or errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
