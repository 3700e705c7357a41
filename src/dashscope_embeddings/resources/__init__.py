"""One module per endpoint family: plan requests, build bodies, parse answers; no I/O.

* :mod:`.text` — the native and OpenAI-compatible text embedding endpoints.

Each module turns a call into :class:`~dashscope_embeddings._transport.APIRequest` objects
and parsers; the core clients send them through the one transport and fan-out.
"""
