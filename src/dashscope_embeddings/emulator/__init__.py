"""A local emulator of the DashScope (Model Studio) text-embedding HTTP API.

It serves the native endpoint (``POST /api/v1/services/embeddings/text-embedding/text-embedding``)
and the OpenAI-compatible one (``POST /compatible-mode/v1/embeddings``) on 127.0.0.1, validates
requests like the service (status codes and JSON error bodies of both protocols), and answers
with deterministic lexical vectors: texts sharing words are close, which is enough for
development and CI but says nothing about model quality. Model limits come from
:mod:`dashscope_embeddings._registry`.

Embeddings come back in a deterministic order that is *not* the input order (for two or more
texts): the service guarantees no order, so clients must sort by ``text_index`` / ``index``.

Comments in the emulator's modules cite the service's public documentation as ``[ref N]``:

* ref 0, 1, 4 — hosts, headers, the native text endpoint, models and limits:
  https://www.alibabacloud.com/help/en/model-studio/text-embedding-synchronous-api
* ref 2 — the OpenAI-compatible endpoint:
  https://docs.qwencloud.com/api-reference/text-embedding/openai-embedding
* ref 3 — the multimodal endpoint:
  https://www.alibabacloud.com/help/en/model-studio/multimodal-embedding-api-reference
* ref 5 — errors: https://www.alibabacloud.com/help/en/model-studio/error-code
* ref 6 — rate limits: https://help.aliyun.com/zh/model-studio/rate-limit
* ref 7a — asynchronous tasks: https://help.aliyun.com/zh/model-studio/text-embedding-batch-api
* ref 7b — the Batch API: https://www.alibabacloud.com/help/en/model-studio/batch-inference
* ref 8 — what the official SDK and the older integrations do (read from their source)
* ref 10 — facts no public page confirms; the emulator's choice is stated where it is used

For reliability and throughput tests it can misbehave on purpose: queued status faults
(:meth:`Emulator.inject`), scripted wire and payload faults (:meth:`Emulator.inject_fault`:
connection resets, truncated JSON, HTML gateway pages, duplicate / missing indices, short
vectors, NaN, slow bodies), random errors and resets, content-inspection rejections, RPM / TPM
quotas and a concurrency cap; :attr:`Emulator.stats` counts what happened.

>>> from dashscope_embeddings.emulator import Emulator
>>> with Emulator(api_key="sk-test", rpm=600) as emu:  # doctest: +SKIP
...     emu.base_url                # 'http://127.0.0.1:PORT/api/v1'
...     emu.inject(429, "Throttling.RateQuota", "slow down", headers={"retry-after": "0"})
...     emu.inject_fault("reset")   # the next request's connection is dropped
...     emu.stats.peak_in_flight

Needs the ``emulator`` extra (Starlette and uvicorn); the core package never imports it.

The modules: :mod:`._server` (:class:`Emulator`, the uvicorn thread), :mod:`._state` (state
shared with the event loop, the request log, the counters), :mod:`._router` (one ASGI
endpoint handing each request to its family), :mod:`._gateway` (body bound, faults, keys,
admission, quotas), :mod:`._faults`, :mod:`._responses` and :mod:`._errors` (what an answer can
be), :mod:`._vectors` and :mod:`._lexical` (the vectors); the endpoint families
:mod:`._text`, :mod:`._multimodal` (with :mod:`._media`) and :mod:`._offline` (files
:mod:`._files`, the Batch API :mod:`._batches`, asynchronous tasks :mod:`._tasks`, sharing
:mod:`._store`).
"""

from __future__ import annotations

try:
    from dashscope_embeddings.emulator._faults import FaultKind
    from dashscope_embeddings.emulator._server import Emulator
    from dashscope_embeddings.emulator._state import EmulatorStats, RecordedRequest
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name not in ("starlette", "uvicorn"):
        raise
    raise ModuleNotFoundError(
        "the DashScope emulator needs Starlette and uvicorn: "
        "pip install 'dashscope-embeddings[emulator]'",
        name=exc.name,
    ) from exc

__all__ = ["Emulator", "EmulatorStats", "FaultKind", "RecordedRequest"]
