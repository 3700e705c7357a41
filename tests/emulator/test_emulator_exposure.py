"""What keeps the emulator safe to run: keys off loopback, body bounds, a bounded request log."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.emulator import __main__ as cli

KEY = "sk-exposure-test"
NATIVE = "/api/v1/services/embeddings/text-embedding/text-embedding"
BOUND = 4096


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY, max_body_bytes=BOUND, request_log_size=5) as emulator:
        yield emulator


def exchange(emu: Emulator, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send raw bytes, read the answer until the server closes or has sent it whole."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=30) as sock:
        sock.sendall(head.encode("ascii") + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            piece = sock.recv(65536)
            if not piece:
                break
            answer += piece
        head_part, _, rest = answer.partition(b"\r\n\r\n")
        status = int(head_part.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head_part.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            rest += piece
        return status, rest


# --- a key off loopback --------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "emulator.example"])
def test_a_non_loopback_host_needs_a_key(host: str) -> None:
    with pytest.raises(ValueError, match="api_key"):
        Emulator(host=host)
    assert Emulator(host=host, api_key=KEY) is not None  # not started: nothing bound


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_a_loopback_host_takes_any_key(host: str) -> None:
    assert Emulator(host=host) is not None


def test_the_command_refuses_a_public_host_without_a_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the emulator was started")

    monkeypatch.setattr(Emulator, "start", never)
    with pytest.raises(SystemExit) as info:
        cli.main(["--host", "0.0.0.0", "--port", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--api-key" in err and "0.0.0.0" in err


def test_the_address_printed_is_the_one_listened_on() -> None:
    line = cli.listening_line("0.0.0.0", 43210)
    assert "listening on 0.0.0.0:43210, every interface" in line
    assert "native http://127.0.0.1:43210/api/v1 " in line  # where a client on this host goes
    line = cli.listening_line("::", 43210)
    assert "listening on [::]:43210" in line and "http://[::1]:43210/api/v1" in line
    line = cli.listening_line("127.0.0.1", 8080)
    assert "listening on 127.0.0.1:8080, loopback only" in line


def test_the_emulator_reports_its_bound_address() -> None:
    emulator = Emulator(port=0).start()
    try:
        assert emulator.address == ("127.0.0.1", emulator.port) and emulator.port > 0
    finally:
        emulator.stop()


# --- bodies over the bound -----------------------------------------------------------------


def test_a_body_over_the_bound_gets_413_before_it_is_read(emu: Emulator) -> None:
    emu.clear_requests()
    # The headers announce a gigabyte; none of it is sent: the answer cannot wait for it.
    head = (
        f"POST {NATIVE} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        "content-length: 1000000000\r\n\r\n"
    )
    status, body = exchange(emu, head)
    assert status == 413
    assert httpx.Response(413, content=body).json()["code"] == "RequestTooLarge"
    assert str(BOUND) in httpx.Response(413, content=body).json()["message"]
    assert [r.status for r in emu.requests] == [413]  # before authentication (no key sent)


def test_a_chunked_body_stops_being_read_past_the_bound(emu: Emulator) -> None:
    emu.clear_requests()
    head = (
        f"POST /compatible-mode/v1/embeddings HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"authorization: Bearer {KEY}\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 1024
    chunks = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 6  # no last chunk: never ends
    status, body = exchange(emu, head, chunks)
    assert status == 413
    assert httpx.Response(413, content=body).json()["error"]["code"] == "request_too_large"


def test_a_body_at_the_bound_is_served(emu: Emulator) -> None:
    text = "word " * ((BOUND - 200) // 5)
    payload = {"model": "text-embedding-v4", "input": {"texts": [text]}}
    raw = httpx.Request("POST", "http://x", json=payload).content
    assert len(raw) <= BOUND
    response = httpx.post(
        emu.base_url + "/services/embeddings/text-embedding/text-embedding",
        content=raw,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text


def test_the_bound_is_checked() -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        Emulator(max_body_bytes=0)
    with pytest.raises(ValueError, match="request_log_size"):
        Emulator(request_log_size=0)


# --- the request log -----------------------------------------------------------------------


def test_the_request_log_keeps_the_newest_entries(emu: Emulator) -> None:
    emu.clear_requests()
    with httpx.Client(headers={"authorization": f"Bearer {KEY}"}) as client:
        for i in range(8):
            client.post(emu.compatible_base_url + "/embeddings", json={"model": f"m{i}"})
    assert [r.json["model"] for r in emu.requests] == [f"m{i}" for i in range(3, 8)]
    assert emu.stats.requests == 8  # the counters still count every request


def test_the_default_log_is_bounded_and_the_command_sets_it() -> None:
    assert 1000 <= Emulator().request_log_size <= 10_000
    args = cli._parser().parse_args(["--request-log-size", "7", "--max-body-bytes", "999"])
    assert args.request_log_size == 7 and args.max_body_bytes == 999


# --- the command's name --------------------------------------------------------------------


def test_help_names_the_program_as_it_was_run() -> None:
    module = subprocess.run(
        [sys.executable, "-m", "dashscope_embeddings.emulator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert module.stdout.startswith("usage: python -m dashscope_embeddings.emulator ")
    script = pathlib.Path(sys.executable).with_name("dashscope-emulator")
    if not script.exists():  # pragma: no cover - depends on how the package was installed
        pytest.skip("no dashscope-emulator console script next to the interpreter")
    console = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert console.stdout.startswith("usage: dashscope-emulator ")
