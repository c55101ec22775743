"""Pyflakes and import order (ruff.toml) over the code and the tests: an unused name or a stray import is a defect
that no other test sees."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "app", "integrations", "tests",
                             "bench", "bot/actions", "wsgi.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
