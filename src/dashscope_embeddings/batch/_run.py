"""How a job's steps are run: each step yields :class:`Call` objects and receives answers.

The sync and async jobs differ only here: :func:`run_sync` calls ``client.files`` /
``client.batches`` methods directly, :func:`run_async` awaits them. A call's exception is
raised inside the step at its ``yield``, so a step handles errors as if it made the call.
"""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field

__all__ = ["Call", "Step", "run_async", "run_sync"]

T = typing.TypeVar("T")
Step = Generator["Call", typing.Any, T]


@dataclass(frozen=True)
class Call:
    """One request for the runner.

    ``client.<namespace>.<method>(*args, **kwargs)``, or a pause of ``args[0]`` seconds when
    ``namespace`` is ``"sleep"``.
    """

    namespace: str
    method: str = ""
    args: tuple[typing.Any, ...] = ()
    kwargs: Mapping[str, typing.Any] = field(default_factory=dict)


def run_sync(client: typing.Any, step: Step[T]) -> T:
    """Run ``step`` with a sync client; a call's exception is raised inside the step."""
    value: typing.Any = None
    error: Exception | None = None
    while True:
        try:
            call = step.throw(error) if error is not None else step.send(value)
        except StopIteration as stop:
            return typing.cast(T, stop.value)
        value, error = None, None
        try:
            if call.namespace == "sleep":
                time.sleep(call.args[0])
            else:
                method = getattr(getattr(client, call.namespace), call.method)
                value = method(*call.args, **call.kwargs)
        except Exception as exc:
            error = exc


async def run_async(client: typing.Any, step: Step[T]) -> T:
    """Run ``step`` with an async client; see :func:`run_sync`."""
    value: typing.Any = None
    error: Exception | None = None
    while True:
        try:
            call = step.throw(error) if error is not None else step.send(value)
        except StopIteration as stop:
            return typing.cast(T, stop.value)
        value, error = None, None
        try:
            if call.namespace == "sleep":
                await asyncio.sleep(call.args[0])
            else:
                method = getattr(getattr(client, call.namespace), call.method)
                value = await method(*call.args, **call.kwargs)
        except Exception as exc:
            error = exc
