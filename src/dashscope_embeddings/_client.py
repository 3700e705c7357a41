"""The core clients: configuration, lifecycle and one method per endpoint call.

Each public method plans its call with an endpoint module (``resources/``), sends the requests
through the one transport (``_transport.py``) side by side (``_fanout.py``), and joins the
answers. What the two clients share is in ``_client_base.py``; :class:`DashScopeClient`
(``_client_sync.py``) and :class:`AsyncDashScopeClient` (``_client_async.py``) differ only in
I/O, and a test keeps their public methods twins.

Lifecycle (both clients): a client opens its connection pool on first use and keeps it until
``close()`` / ``aclose()`` (or the ``with`` / ``async with`` block ends). A closed client stays
closed: every later call raises :class:`~dashscope_embeddings.ClientClosedError`. An injected
``http_client`` is never closed by us. ``with_options(...)`` returns a copy with some settings
changed that shares the original's connections, pacing and usage total; the shared connections
close when the last of the two is closed or collected.
"""

from __future__ import annotations

from dashscope_embeddings._client_async import AsyncDashScopeClient
from dashscope_embeddings._client_sync import DashScopeClient

__all__ = ["AsyncDashScopeClient", "DashScopeClient"]
