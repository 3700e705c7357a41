"""README.md and cookbook/ run as written, against the bundled emulator.

Every ```python block of README.md is run as pasted (by pytest-examples), with
``DASHSCOPE_API_KEY`` / ``DASHSCOPE_BASE_URL`` pointing at the emulator, in a fresh folder that
holds the pictures the multimodal examples name. A block that needs the real service is marked
``python test="skip" reason="..."`` in its fence and skipped here. Every cookbook script runs
as a fresh process with no key, so it starts the emulator itself.
"""

from __future__ import annotations

import os
import pathlib
import struct
import subprocess
import sys
import zlib

import pytest
from pytest_examples import CodeExample, EvalExample, find_examples

from dashscope_embeddings.emulator import Emulator

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = [e for e in find_examples(str(ROOT / "README.md")) if e.prefix.split()[0] in ("py", "python")]
COOKBOOK = sorted((ROOT / "cookbook").glob("*.py"))


def _png(words: str, rgb: tuple[int, int, int]) -> bytes:
    """A real 8x8 PNG whose tEXt chunk carries ``words`` (the emulator reads them)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * 8
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
        + chunk(b"tEXt", b"Description\x00" + words.encode())
        + chunk(b"IDAT", zlib.compress(row * 8))
        + chunk(b"IEND", b"")
    )


def test_the_readme_has_python_examples() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_readme_block_runs_as_written(
    example: CodeExample,
    eval_example: EvalExample,
    emulator_env: Emulator,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = example.prefix_settings()
    if settings.get("test") == "skip":
        pytest.skip(settings.get("reason", "needs the real service"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, rgb in (("red-shoe", (200, 0, 0)), ("blue-boat", (0, 0, 200)), ("green-tree", (0, 150, 0))):
        (photos / f"{name}.png").write_bytes(_png(name.replace("-", " "), rgb))
    monkeypatch.chdir(tmp_path)
    eval_example.run(example)


@pytest.mark.parametrize("script", COOKBOOK, ids=lambda p: p.name)
def test_cookbook_script_runs_against_the_emulator(script: pathlib.Path, tmp_path: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "emulator" in (result.stdout + result.stderr).lower()
