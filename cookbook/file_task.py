"""Embed a text file with one text-embedding-async-v2 task: resumable, one URL in, one result.

Uses the real DashScope service when DASHSCOPE_API_KEY is set (then --input-url must be a
public UTF-8 text file, one text per line), and otherwise the bundled emulator on 127.0.0.1
with the handbook served from a local HTTP server.

    python cookbook/file_task.py [--input-url URL] [--state corpus.task.json]

Run it again with the same --state after a crash or Ctrl-C: it finds the same task and never
creates a second one.
"""

# /// script
# requires-python = ">=3.10"
# dependencies = ["dashscope-embeddings[emulator]"]
# ///

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import pathlib
import threading
from collections.abc import Iterator

from dashscope_embeddings import DashScopeClient
from dashscope_embeddings.batch import FileTaskJob

HANDBOOK = pathlib.Path(__file__).parent / "data" / "handbook.jsonl"


def handbook_lines() -> bytes:
    """The handbook's entries, one per line, as the task's input file."""
    rows = [json.loads(line) for line in HANDBOOK.read_text(encoding="utf-8").splitlines() if line]
    texts = [" ".join(str(row.get("text", row)).split()) for row in rows]
    return ("\n".join(texts) + "\n").encode("utf-8")


@contextlib.contextmanager
def local_file(data: bytes) -> Iterator[str]:
    """Serve ``data`` at a loopback URL (standing in for a public bucket)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/handbook.txt"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def client_and_url(input_url: str | None) -> Iterator[tuple[DashScopeClient, str, str]]:
    """The real service if a key is set, else the emulator and a local input file."""
    if os.environ.get("DASHSCOPE_API_KEY"):
        if not input_url:
            raise SystemExit("--input-url is required with the real service (a public URL)")
        with DashScopeClient() as client:
            yield client, input_url, "the DashScope service"
        return
    from dashscope_embeddings.emulator import Emulator

    with (
        Emulator() as emulator,
        local_file(handbook_lines()) as url,
        DashScopeClient("emulator", base_url=emulator.url) as client,
    ):
        yield client, url, f"the bundled emulator at {emulator.url}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-url")
    parser.add_argument("--state", default="corpus.task.json")
    args = parser.parse_args(argv)
    state = pathlib.Path(args.state)
    with client_and_url(args.input_url) as (client, url, where):
        print(f"Using {where}")
        if state.exists():
            job = FileTaskJob.resume(state, client)
            print(f"Resumed task {job.task_id}")
        else:
            job = FileTaskJob.submit(url, state_path=state, client=client)
            print(f"Created task {job.task_id}")
        job.wait(progress=lambda s: print(f"  {s.task_id}: {s.status}"))
        results = job.results()
        for failure in results.failed:
            print(f"  failed {failure}")
        good = [v for v in results.vectors if v is not None]
        print(f"{len(good)} vectors of {len(good[0]) if good else 0} dimensions; {results.usage}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
