"""Talks to a running Rasa over the REST channel and prints the replies: a manual/smoke check.

    python tests/converse.py --url http://127.0.0.1:5005 --sender conv-1 你好 "我要挂号" 内科 明天 2 是
"""
from __future__ import annotations

import argparse
import json
import urllib.request


def say(url: str, sender: str, text: str) -> list[str]:
    body = json.dumps({"sender": sender, "message": text}).encode()
    request = urllib.request.Request(f"{url}/webhooks/rest/webhook", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return [m.get("text", json.dumps(m, ensure_ascii=False)) for m in json.load(response)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:5005")
    parser.add_argument("--sender", default="conv-smoke")
    parser.add_argument("messages", nargs="+")
    args = parser.parse_args()
    for text in args.messages:
        print(f"> {text}")
        for reply in say(args.url, args.sender, text):
            print(f"  {reply}")


if __name__ == "__main__":
    main()
