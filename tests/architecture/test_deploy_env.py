"""deploy/systemd: the environment file and the units read as systemd reads them, against the repository's layout.

Why not python-dotenv: it reads `KEY=value  # note` as "value", so it would hide the very mistake this guards against.
systemd's EnvironmentFile= (systemd.exec(5); the parser is src/basic/env-file.c) reads a file this way, and
`systemd_env` below implements exactly that much:
- a line whose first non-blank character is `#` or `;` is a comment (a backslash at its end continues it); a `#`
  anywhere else is part of the value;
- `KEY=VALUE`: blanks around the key and before the value are dropped; an unquoted value loses its trailing blanks;
- in an unquoted value a backslash takes the next character literally (backslash-newline joins lines);
- 'single quotes' keep everything up to the next quote; "double quotes" keep everything, a backslash escaping
  only `"`, `\\`, `` ` `` and `$` (and a newline); after a closing quote the value goes on (`a"b c"d` is `ab cd`);
- a line without `=` is dropped; no `$VAR` is expanded; a later assignment of a key replaces an earlier one.
Not implemented (the example needs none): UTF-8 validation and the check of key names systemd makes at exec time.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.core.config import PRODUCTION_SECRETS, ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
ENV_FILE = SYSTEMD / "linli.env.example"
INSTALL = "/opt/linli"  # where the units expect the checkout (docs/deploy.md)
# May stay empty in a working deployment: Redis without requirepass; no replica; the other provider's account.
MAY_BE_EMPTY = {"BOT_REDIS_PASSWORD"}
# Variables systemd itself provides to Exec lines.
SYSTEMD_VARIABLES = {"MAINPID"}
# Read by tools, not by Linli: Rasa's telemetry switch (bot/scripts/env.sh sets the same).
OTHER_TOOLS = {"RASA_TELEMETRY_ENABLED"}
# A unit's command, relative to its virtualenv, and the pinned requirement that installs it there.
VENV_COMMANDS = {".venv/bin/gunicorn": ("requirements.txt", "gunicorn"), ".venv/bin/flask": ("requirements.txt", "Flask"),
                 "bot/.venv/bin/rasa": ("bot/requirements.lock.txt", "rasa")}
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def systemd_env(text: str) -> dict[str, str]:
    """KEY -> value as systemd's EnvironmentFile= reads `text` (the module's docstring says how)."""
    env: dict[str, str] = {}
    state, key, value, i = "pre_key", "", "", 0
    trailing = None  # where the unquoted value's run of trailing blanks starts

    def push() -> None:
        env[key.strip()] = value[:trailing] if state == "value" and trailing is not None else value

    while i < len(text):
        c = text[i]
        i += 1
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif c not in " \t\n\r":
                state, key = "key", c
        elif state == "key":
            if c in "\n\r":
                state, key = "pre_key", ""  # no '=': systemd drops the line
            elif c == "=":
                state, value, trailing = "pre_value", "", None
            else:
                key += c
        elif state in ("pre_value", "value"):
            if c in "\n\r":
                push()
                state, key = "pre_key", ""
            elif state == "pre_value" and c == "'":
                state = "single"
            elif state == "pre_value" and c == '"':
                state = "double"
            elif c == "\\":
                state, trailing = "value_escape", None
            elif state == "pre_value" and c in " \t":
                pass
            else:
                if c in " \t":
                    trailing = len(value) if trailing is None else trailing
                else:
                    trailing = None
                state, value = "value", value + c
        elif state == "value_escape":
            state = "value"
            value += "" if c in "\n\r" else c
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value += c
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value += c
        elif state == "double_escape":
            state = "double"
            if c in '"\\`$':
                value += c
            elif c != "\n":
                value += "\\" + c
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in "\n\r":
                state = "pre_key"
        elif state == "comment_escape":
            state = "pre_key" if c in "\n\r" else "comment"
    if state not in ("pre_key", "key", "comment", "comment_escape"):
        push()
    return env


def unit_directives(path: Path) -> dict[str, list[str]]:
    """Directive -> its values in order, as systemd reads a unit: comments at a line's start, `\\` continues."""
    directives: dict[str, list[str]] = {}
    logical = re.sub(r"\\\n", " ", path.read_text())
    for line in logical.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or line.startswith("["):
            continue
        name, _, value = line.partition("=")
        directives.setdefault(name.strip(), []).append(value.strip())
    return directives


def in_repo(path: str) -> Path:
    """A path under the install directory as the repository's own path."""
    assert path.startswith(INSTALL + "/") or path == INSTALL, f"{path} is outside {INSTALL}"
    return ROOT / path[len(INSTALL):].lstrip("/")


UNITS = sorted(SYSTEMD.glob("*.service"))


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return systemd_env(ENV_FILE.read_text())


# --- the parser itself, on the cases the example file could meet ---------------------------------------------------

def test_the_parser_reads_an_inline_comment_as_part_of_the_value_like_systemd():
    parsed = systemd_env("# a comment\n  ; another\nA=1\nSECRET_KEY=      # python -c 'x'\nB = spaced  \n"
                         "C='single # kept'\nD=\"double \\\"q\\\" \\n\"\nE=a\\\nb\nNOEQUALS\nF=\nG=x\nG=y")
    assert parsed == {"A": "1", "SECRET_KEY": "# python -c 'x'", "B": "spaced", "C": "single # kept",
                      "D": 'double "q" \\n', "E": "ab", "F": "", "G": "y"}


# --- the environment file ------------------------------------------------------------------------------------------

def test_every_line_of_the_env_file_is_a_comment_or_an_assignment(env):
    for number, line in enumerate(ENV_FILE.read_text().splitlines(), 1):
        stripped = line.strip()
        assert not stripped or stripped.startswith("#") or re.fullmatch(r"[A-Z][A-Z0-9_]*=\S*", stripped), (
            f"{ENV_FILE.name}:{number}: {line!r}: one KEY=VALUE per line, no blanks, comments on lines of their own")
    keys = [line.split("=", 1)[0] for line in ENV_FILE.read_text().splitlines() if re.match(r"[A-Z]", line)]
    assert len(keys) == len(set(keys)), "a key set twice: systemd keeps the last one"


def test_no_value_of_the_env_file_is_a_comment(env):
    assert {k: v for k, v in env.items() if v.lstrip().startswith("#")} == {}


def test_every_variable_the_bot_reads_is_set(env):
    referenced = set()
    for name in ("endpoints.yml", "credentials.yml"):
        text = re.sub(r"(?m)^\s*#.*$", "", (ROOT / "bot" / name).read_text())  # YAML comments
        referenced |= {a or b for a, b in VAR.findall(text)}
    # What bot/scripts/env.sh gives a default for under `make`: the units do not source it, so the file must.
    defaults = set(re.findall(r'export ([A-Z_]+)="\$\{\1:-', (ROOT / "bot/scripts/env.sh").read_text()))
    defaults -= {"TF_CPP_MIN_LOG_LEVEL"}  # TensorFlow's log level: its default is fine
    assert referenced and defaults
    missing = sorted((referenced | defaults) - env.keys())
    assert missing == [], f"Rasa refuses to start on an unset ${{VAR}}: set {missing} in {ENV_FILE.name}"
    empty = sorted(k for k in referenced if not env[k] and k not in MAY_BE_EMPTY)
    assert empty == [], f"{empty} are empty in {ENV_FILE.name}"


def test_every_variable_the_units_reference_is_set(env):
    for unit in UNITS:
        directives = unit_directives(unit)
        assert directives.get("EnvironmentFile") == ["/etc/linli/linli.env"], unit.name
        own = {line.split("=", 1)[0] for line in directives.get("Environment", [])}
        used = {a or b for key, values in directives.items() if key.startswith("Exec") for v in values
                for a, b in VAR.findall(v)}
        assert used - SYSTEMD_VARIABLES - own - env.keys() == set(), unit.name


def test_every_key_of_the_env_file_is_read_by_someone(env):
    bot_reads = set()
    for path in [ROOT / "bot/endpoints.yml", ROOT / "bot/credentials.yml", ROOT / "bot/scripts/env.sh",
                 *(ROOT / "bot/actions").glob("*.py")]:
        bot_reads |= set(re.findall(r"[A-Z][A-Z0-9_]{2,}", path.read_text()))
    settings = set(Settings.__dataclass_fields__)
    assert sorted(env.keys() - settings - bot_reads - OTHER_TOOLS) == [], "a misspelt key is silently ignored"


def test_the_env_file_starts_once_its_blank_secrets_are_filled(env, monkeypatch):
    for key in list(Settings.__dataclass_fields__):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env()  # as shipped: the blank secrets are refused, not taken for set
    blank = [name for name in (*PRODUCTION_SECRETS, "WECHAT_AES_KEY") if not env[name]]
    assert "SECRET_KEY" in blank
    for name in blank:
        monkeypatch.setenv(name, "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v"[: 43])
    settings = Settings.from_env()
    assert settings.is_production
    assert settings.RASA_URL.startswith("http://") and " " not in settings.RASA_URL
    assert settings.PUBLIC_BASE_URL.startswith("https://") and " " not in settings.PUBLIC_BASE_URL
    assert settings.REPORTS_DATABASE_URL == ""


# --- the units against the repository's layout ---------------------------------------------------------------------

@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_each_unit_runs_a_command_the_checkout_provides(unit):
    directives = unit_directives(unit)
    workdir = in_repo(directives["WorkingDirectory"][0])
    assert workdir.is_dir(), f"{unit.name}: WorkingDirectory {workdir} is not in the repository"
    for command in directives["ExecStart"] + directives.get("ExecReload", []):
        program, *args = command.split()
        if not program.startswith(INSTALL):
            assert Path(program).exists(), f"{unit.name}: {program}"  # a system command (/bin/kill)
            continue
        relative = str(in_repo(program).relative_to(ROOT))
        requirements, package = VENV_COMMANDS[relative]
        assert re.search(rf"^{package}==", (ROOT / requirements).read_text(), re.M | re.I), (
            f"{unit.name}: {relative} comes from {package}, which {requirements} does not pin")
        check_arguments(unit.name, Path(relative).name, args, workdir)


def check_arguments(unit: str, program: str, args: list[str], workdir: Path) -> None:
    options = dict(zip(args, args[1:]))
    if program == "gunicorn":
        assert (workdir / options["-c"]).is_file(), unit
        module, _, name = args[-1].partition(":")
        assert re.search(rf"^{name} = ", (workdir / f"{module}.py").read_text(), re.M), unit
    elif program == "flask":
        assert (workdir / f"{options['--app']}.py").is_file(), unit
        command = args[args.index("--app") + 2]
        assert f'@app.cli.command("{command}")' in (ROOT / "app/cli.py").read_text(), f"{unit}: flask {command}"
    elif program == "rasa" and args[:2] == ["run", "actions"]:
        assert (workdir / options["--actions"] / "__init__.py").is_file(), unit
    elif program == "rasa":
        assert (workdir / options["--endpoints"]).is_file() and (workdir / options["--credentials"]).is_file(), unit
        # The model is built, not checked in: the unit must name the file `make bot-model` writes.
        assert f"MODEL={options['--model']}" in (ROOT / "bot/scripts/train_if_changed.sh").read_text(), unit
    else:
        raise AssertionError(f"{unit}: no check for {program}")
