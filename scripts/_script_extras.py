"""The extras a cookbook script declares in its PEP 723 block, for scripts/quickstart.sh.

    python scripts/_script_extras.py cookbook/quickstart.py   # prints: langchain,numpy,emulator

The ``# /// script`` block is found with PEP 723's reference regular expression and read with
tomllib on Python 3.11+. Python 3.10 has no tomllib, so there only the ``dependencies`` list is
read, by a regular expression that accepts a list of double-quoted strings (the cookbook's
format). Every dependency must be this package with extras: a cookbook script needs nothing that
an extra does not bring. Standard library only; tests/unit/test_cookbook_extras.py checks that
both readers agree with the reference one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PROJECT = "dashscope-embeddings"
# PEP 723's reference regular expression for an inline metadata block
BLOCK = r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$"
_DEPENDENCIES = re.compile(r'(?m)^dependencies\s*=\s*\[(?P<items>(?:\s*"[^"\n]*"\s*,?)*)\s*\]')
_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)\s*(?:\[(?P<extras>[^\]]*)\])?$")


class MetadataError(ValueError):
    """A script's ``# /// script`` block is missing, or says something this reader refuses."""


def block(text: str) -> str | None:
    """The TOML of the ``script`` block in ``text`` (PEP 723), or ``None`` if it has none."""
    matches = [m for m in re.finditer(BLOCK, text) if m.group("type") == "script"]
    if len(matches) > 1:
        raise MetadataError("more than one '# /// script' block")
    if not matches:
        return None
    return "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in matches[0].group("content").splitlines(keepends=True)
    )


def dependencies_without_tomllib(toml: str) -> list[str]:
    """The block's ``dependencies``, read by a regular expression (for Python 3.10)."""
    if not re.search(r"(?m)^dependencies\s*=", toml):
        return []
    match = _DEPENDENCIES.search(toml)
    if match is None:
        raise MetadataError(
            "the dependencies list must be double-quoted strings (read without tomllib)"
        )
    return re.findall(r'"([^"\n]*)"', match.group("items"))


def dependencies(toml: str) -> list[str]:
    """The block's ``dependencies`` list."""
    if sys.version_info < (3, 11):
        return dependencies_without_tomllib(toml)
    import tomllib

    try:
        value = tomllib.loads(toml).get("dependencies", [])
    except tomllib.TOMLDecodeError as exc:
        raise MetadataError(f"the block is not valid TOML: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise MetadataError("dependencies must be a list of strings")
    return value


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extras(script: Path) -> list[str]:
    """The extras of this package that ``script`` declares, in order, each once."""
    toml = block(script.read_text(encoding="utf-8"))
    if toml is None:
        raise MetadataError("no '# /// script' block")
    found: list[str] = []
    for dependency in dependencies(toml):
        match = _REQUIREMENT.match(dependency.strip())
        if match is None or _normalise(match.group("name")) != PROJECT:
            raise MetadataError(f"{dependency!r} is not {PROJECT}[extras]")
        for extra in (match.group("extras") or "").split(","):
            extra = extra.strip()
            if extra and extra not in found:
                found.append(extra)
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/_script_extras.py cookbook/NAME.py", file=sys.stderr)
        return 2
    try:
        print(",".join(extras(Path(argv[0]))))
    except (OSError, MetadataError) as exc:
        print(f"{argv[0]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
