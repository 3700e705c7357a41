"""Embedding a corpus on a Ray cluster with Ray Data, the fleet sharing one account's quota.

Setup:
    .. code-block:: bash

        pip install "dashscope-embeddings[ray]"
        export DASHSCOPE_API_KEY="sk-..."   # on every node (the actors read it there)

Use:
    .. code-block:: python

        import ray
        from dashscope_embeddings.ray import DashScopeEmbedder

        ray.data.DataContext.get_current().execution_options.preserve_order = True
        ds = ray.data.read_parquet("corpus/").map_batches(
            DashScopeEmbedder,
            fn_constructor_kwargs={"model": "text-embedding-v4", "key_column": "id"},
            compute=ray.data.ActorPoolStrategy(size=4),
            batch_size=256, batch_format="pyarrow", num_cpus=0.25,
        )
        ds.write_parquet("vectors/")

The quota, shared by the fleet
------------------------------
The first actor to start creates a small named actor (``quota:<quota_name>`` in the
``dashscope-embeddings`` namespace, detached, 0 CPUs, asyncio), the fleet's coordinator; every
actor's client asks it before each HTTP attempt.

* **One adaptive limit per account, by default.** With nothing declared, the actors of one
  account (a hash of the key, never the key; the service's host; the model) share one
  concurrency limit held by the coordinator: the core's adaptive policy (start at 8, grow by
  one after a window of successes, step back on a 429, cut by 30 % when still throttled), fed
  by every actor's answers. A 429 seen by any actor steps the fleet back; a permit per HTTP
  attempt is handed out fleet-wide, first come, first served. The coordinator also knows how
  many requests were on the wire when the service refused one: a 429 for the k-th in flight
  holds the fleet to k - 1 until the policy probes one higher. Each actor's own adaptive
  limiter still runs underneath.
* **rpm / tpm: a reservation per request attempt.** ``rpm``, ``tpm`` and ``max_concurrency``
  given to :class:`DashScopeEmbedder` are the *account's*, for all its actors together. Each
  attempt reserves one request and its estimated tokens in the coordinator's rolling windows
  (the core's ``RateWindow``), both or neither, in one round trip (the client's
  ``rpm_budget`` / ``tpm_budget`` hook). The fleet never sends more than the windows allow.
* **max_concurrency caps the adaptive limit.** The fleet never has more than
  ``max_concurrency`` requests on the wire, whatever the adaptive limit says. A permit is a
  lease that ends by itself ``timeout`` + 30 s later, so an actor killed mid-request cannot
  leak one. Each actor's own ceiling is then twice ``max_concurrency``: one busy actor may use
  the whole account while the others wait for input.

Why not give each of N actors 1/N of the quota: an actor does not know N (an autoscaling pool
changes it), a small cap splits badly (5 permits for 2 actors: 2 + 2 wastes one, 3 + 3 goes
over), and the shares of idle actors are lost (a job's last batches, uneven batches). Asking
costs one round trip per attempt for a permit and one for a rate reservation (about 1 ms each
on one machine, against tens or hundreds of milliseconds per request); the release is not
waited for. Measured in ``benchmarks/RESULTS.md``: with defaults, 1 to 8 actors against an
emulated account of 8 in flight send about as many 429s as one process does, where each
actor finding its share alone sent 12 to 141 for 800 requests. ``quota_name=None`` (or Ray
not initialised in the process) makes the limits each actor's own.

**A lost coordinator.** If the coordinator stops answering (killed, unreachable: no answer
within 10 s, asked again every 10 s while a permit is awaited), each actor says so once (a
WARNING of the ``dashscope_embeddings.ray`` logger) and paces itself from then on: its own
adaptive limiter, and its own windows of the declared ``rpm`` / ``tpm``. The job goes on.

The quota actor outlives the job (two jobs on one account share it); :func:`fleet_quota_stats`
reads its counters (``fleet_limits``: each account's limit now) and :func:`remove_fleet_quota`
ends it. When declared limits change, the latest actor to declare them sets them for the fleet
(with a warning) and the windows start again; an actor that declares nothing leaves them as
they are.

Failures
--------
A row whose text the service rejects (content inspection, length), or that has no text, fails
its batch with :class:`RejectedRowsError` naming the rows by ``key_column`` (or by position in
the Ray batch). With ``on_error="skip"`` the row gets a null vector and the reason in
``<output_column>_error``; every other row keeps its own vector, never another row's.
"""

from __future__ import annotations

try:
    import ray as _ray
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name != "ray":
        raise
    raise ModuleNotFoundError(
        'dashscope_embeddings.ray needs Ray Data: pip install "dashscope-embeddings[ray]"',
        name="ray",
    ) from exc

from dashscope_embeddings.ray._embedder import DashScopeEmbedder
from dashscope_embeddings.ray._quota import (
    FleetQuota,
    FleetQuotaError,
    QuotaLimits,
    QuotaStats,
)
from dashscope_embeddings.ray._rejected import RejectedRowsError

__all__ = [
    "DashScopeEmbedder",
    "FleetQuotaError",
    "QuotaLimits",
    "QuotaStats",
    "RejectedRowsError",
    "fleet_quota_stats",
    "remove_fleet_quota",
]


def fleet_quota_stats(quota_name: str = "default") -> QuotaStats | None:
    """The counters of the fleet quota ``quota_name`` in this Ray cluster, or ``None``.

    Raises:
        FleetQuotaError: Ray is not initialised in this process, or the quota did not answer.
    """
    _need_ray(quota_name)
    quota = FleetQuota.lookup(quota_name)
    return quota.stats() if quota is not None else None


def remove_fleet_quota(quota_name: str = "default") -> bool:
    """End the fleet quota ``quota_name``; ``False`` when there was none.

    Raises:
        FleetQuotaError: Ray is not initialised in this process.
    """
    _need_ray(quota_name)
    quota = FleetQuota.lookup(quota_name)
    if quota is None:
        return False
    quota.kill()
    return True


def _need_ray(quota_name: str) -> None:
    if not _ray.is_initialized():
        raise FleetQuotaError(
            f"fleet quota {quota_name!r} lives in a Ray cluster: call ray.init() first"
        )
