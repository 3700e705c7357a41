"""The CLI's file handling: where a bad byte is, and which outputs are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashscope_embeddings.cli._io import CLIError, Writer, check_output, read_corpus

# Far past the decoder's first buffer (8 KiB), so an offset counted inside it is wrong.
GOOD_LINES = 3000


def _bad_file(path: Path, header: bytes, line: bytes) -> tuple[int, int]:
    """Write ``header`` + GOOD_LINES copies of ``line`` + a line with a bad byte.

    Returns the bad byte's offset in the file and its line number.
    """
    head = header + line * GOOD_LINES
    prefix = b'{"text": "caf' if path.suffix == ".jsonl" else b"x,caf"
    path.write_bytes(head + prefix + b'\xe9"}\n' + line)
    lines_before = head.count(b"\n")
    return len(head) + len(prefix), lines_before + 1


@pytest.mark.parametrize(
    ("name", "header", "line"),
    [
        ("c.jsonl", b"", b'{"text": "a line of plain text"}\n'),
        ("c.csv", b"id,text\n", b"1,a line of plain text\n"),
        ("c.txt", b"", b"a line of plain text\n"),
        ("bom.jsonl", b"\xef\xbb\xbf", b'{"text": "a line of plain text"}\n'),
    ],
)
def test_a_bad_utf8_byte_is_reported_at_its_offset_and_line(
    tmp_path: Path, name: str, header: bytes, line: bytes
) -> None:
    path = tmp_path / name
    offset, number = _bad_file(path, header, line)
    assert path.read_bytes()[offset] == 0xE9
    with pytest.raises(CLIError) as info:
        read_corpus(path, text_field="text", id_field=None)
    message = str(info.value)
    assert f"byte {offset:,}" in message and f"line {number:,}" in message, message
    assert "not UTF-8" in message


def test_a_jsonl_line_with_a_unicode_line_separator_stays_one_text(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes('{"text": "a\u2028b"}\r\n{"text": "c"}\n'.encode())
    corpus = read_corpus(path, text_field="text", id_field=None)
    assert corpus.texts == ["a\u2028b", "c"] and corpus.rows == [1, 2]


def test_an_output_that_is_the_input_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "corpus.jsonl"
    source.write_text('{"text": "x"}\n')
    for out in (source, tmp_path / "." / "corpus.jsonl"):
        with pytest.raises(CLIError, match="is the input"):
            check_output(out, source=source, overwrite=True)
    link = tmp_path / "link.jsonl"
    link.symlink_to(source)
    with pytest.raises(CLIError, match="is the input"):
        check_output(link, source=source, overwrite=True)
    hard = tmp_path / "hard.jsonl"
    os.link(source, hard)
    with pytest.raises(CLIError, match="is the input"):
        check_output(hard, source=source, overwrite=True)
    assert source.read_text() == '{"text": "x"}\n'


def test_an_existing_output_needs_overwrite(tmp_path: Path) -> None:
    source = tmp_path / "c.txt"
    source.write_text("x\n")
    out = tmp_path / "o.jsonl"
    check_output(out, source=source, overwrite=False)  # absent: fine
    out.write_text("earlier vectors\n")
    with pytest.raises(CLIError, match="exists; pass --overwrite"):
        check_output(out, source=source, overwrite=False)
    check_output(out, source=source, overwrite=True)
    assert out.read_text() == "earlier vectors\n"


def test_the_writers_temporary_file_says_partial_and_is_dropped_on_abort(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    writer = Writer(out, 2)
    assert writer.tmp.parent == tmp_path and "partial" in writer.tmp.name
    assert not writer.tmp.name.endswith(out.suffix)  # no reader takes it for an output
    writer.abort()
    assert list(tmp_path.iterdir()) == []
