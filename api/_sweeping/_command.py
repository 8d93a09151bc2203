"""The command an agent runs for a sweep run when none is given after ``--``.

A sweep config's ``command`` (default ``${env} ${interpreter} ${program} ${args}``) is
a list of words. A word that is exactly one macro is replaced by that macro's words
(``${args}`` becomes one ``--name=value`` word per parameter); ``${envvar:NAME}`` is
replaced wherever it appears inside a word. Values are written the way Python's
``str`` writes them, as W&B's agent does, so a script written for ``wandb agent``
parses the same flags: ``--lr=0.001``, ``--lr=1e-05``, ``--flag=True``,
``--layers=[64, 32]``, ``--opt=None``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._sweep_config import SweepConfigError

__all__ = ["DEFAULT_COMMAND", "MACROS", "build_command", "check_command"]

log = logging.getLogger("runlog")

DEFAULT_COMMAND: tuple[str, ...] = ("${env}", "${interpreter}", "${program}", "${args}")
"""What an agent runs when the config has no ``command`` (W&B's default)."""

MACROS: tuple[str, ...] = (
    "env",
    "interpreter",
    "program",
    "args",
    "args_no_hyphens",
    "args_no_boolean_flags",
    "args_no_equals",
    "args_json",
    "args_json_file",
)
"""The names a whole word ``${name}`` may take (besides ``${envvar:NAME}``)."""

_ENVVAR = re.compile(r"\$\{envvar:([A-Za-z0-9_]*)\}")
_WHOLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def _words(config: Mapping[str, Any]) -> list[str]:
    command = config.get("command")
    if command is None:
        return list(DEFAULT_COMMAND)
    if isinstance(command, str) or not isinstance(command, list) or not command:
        raise SweepConfigError(
            "command: must be a non-empty list of words, e.g. "
            "[${env}, ${interpreter}, ${program}, ${args}]"
        )
    for word in command:
        if isinstance(word, (dict, list)) or word is None:
            raise SweepConfigError(f"command: {word!r} is not a word; write each word as a string")
    return [str(word) for word in command]


def check_command(config: Mapping[str, Any], *, to_run: bool = False) -> None:
    """Refuse a ``command``/``program`` an agent could not run, naming the key.

    A config without either is fine until an agent must run it without a command
    after ``--`` (``to_run``).

    Raises:
        SweepConfigError: ``command`` is not a list of words, names an unknown macro,
            or uses ``${program}`` while ``program`` is missing.
    """
    program = config.get("program")
    if program is not None and (not isinstance(program, str) or not program):
        raise SweepConfigError(f"program: must be a file name such as train.py, got {program!r}")
    if config.get("command") is None and program is None:
        if to_run:
            raise SweepConfigError(
                "program: the sweep config has neither 'program' nor 'command', so the agent "
                "has nothing to run; add e.g. 'program: train.py', or give the command after --"
            )
        return
    for word in _words(config):
        whole = _WHOLE.match(word)
        if whole is None:
            continue
        name = whole.group(1)
        if name not in MACROS:
            # W&B's agent silently drops an unknown macro; a typo such as ${arg}
            # would then run the program without its parameters.
            raise SweepConfigError(
                f"command: unknown macro ${{{name}}}; the macros are "
                + ", ".join(f"${{{m}}}" for m in MACROS)
                + " and ${envvar:NAME}"
            )
        if name == "program" and program is None:
            raise SweepConfigError(
                "program: the command uses ${program} but the config names no program; "
                "add e.g. 'program: train.py', or give the command after --"
            )


def _text(value: Any) -> str:
    # Python's str() on purpose: W&B's agent formats flags with an f-string, and
    # scripts parse exactly that (True/False, [1, 2], 1e-05, None).
    return f"{value}"


def _macro_words(
    params: Mapping[str, Any], json_file: Path, program: str | None
) -> dict[str, list[str]]:
    args: list[str] = []
    no_hyphens: list[str] = []
    no_booleans: list[str] = []
    no_equals: list[str] = []
    for name, value in params.items():
        flag = f"{name}={_text(value)}"
        args.append("--" + flag)
        no_hyphens.append(flag)
        no_equals += ["--" + name, _text(value)]
        if isinstance(value, bool):
            if value:
                no_booleans.append("--" + name)  # a false flag is left out
        else:
            no_booleans.append("--" + flag)
    return {
        "env": ["/usr/bin/env"] if os.name == "posix" else [],
        "interpreter": [sys.executable],
        "program": [program] if program is not None else [],
        "args": args,
        "args_no_hyphens": no_hyphens,
        "args_no_boolean_flags": no_booleans,
        "args_no_equals": no_equals,
        "args_json": [json.dumps(dict(params))],
        "args_json_file": [str(json_file)],
    }


def _expand_envvars(word: str, environ: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            # W&B's agent puts the variable's name in its place; kept for parity, but said.
            log.warning("runlog agent: ${envvar:%s} is not set; using the word %r", name, name)
            return name
        return environ[name]

    return _ENVVAR.sub(value, word)


def build_command(
    config: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    json_file: Path,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The argument list that runs one sweep run with ``params``.

    ``json_file`` is where ``${args_json_file}`` points; it is written (the parameters
    as JSON) only if the command uses that macro. ``environ`` feeds ``${envvar:NAME}``
    (default: this process's environment).

    Raises:
        SweepConfigError: as ``check_command``.
    """
    check_command(config, to_run=True)
    environment = os.environ if environ is None else environ
    macros = _macro_words(params, json_file, config.get("program"))
    words: list[str] = []
    for word in _words(config):
        whole = _WHOLE.match(word)
        if whole is not None:
            if whole.group(1) == "args_json_file":
                json_file.write_text(macros["args_json"][0])
            words += macros[whole.group(1)]
        else:
            words.append(_expand_envvars(word, environment))
    if not words:
        raise SweepConfigError("command: expands to nothing; give the program to run")
    return words
