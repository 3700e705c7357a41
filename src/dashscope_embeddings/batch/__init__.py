"""Large corpora through the OpenAI-compatible Batch API, as resumable jobs (half price).

The Batch API runs JSON-lines files of embedding requests within a completion window (24 h by
default), outside the real-time quota, at half the real-time price. A :class:`BatchJob` plans
the lines (up to the model's texts per request each, a ``custom_id`` per line), splits them
into files by line count and size, uploads them, creates one batch per file, polls, downloads
the outputs and joins them back to the inputs in input order.

>>> from dashscope_embeddings.batch import BatchJob
>>> with BatchJob.submit(texts, model="text-embedding-v4", ids=doc_ids,
...                      state_path="corpus.job.json") as job:  # doctest: +SKIP
...     job.wait(progress=print)
...     results = job.results()
...     if results.failed:                  # per-line failures: index, id, code, message
...         job.resubmit_failed()
...         job.wait()
...         results = job.results()
>>> vectors = results.embeddings           # every input, in input order  # doctest: +SKIP
>>> results.usage                          # priced at the Batch API rate  # doctest: +SKIP

Resumable: the job's state (files, batches, which inputs each line holds, what was
downloaded) lives in ``state_path`` and the folder ``<state_path>.d``, rewritten atomically
after every step. After a crash or Ctrl-C, ``BatchJob.resume(state_path)`` goes on polling and
downloading; nothing recorded as uploaded or created is sent again, so nothing is billed twice.

Outcomes per batch: ``completed``; ``failed`` (the service refused the file: every input of
it fails with the batch's error); ``expired`` (lines done in the window are kept, the rest fail
with ``batch_expired``); ``cancelled`` (likewise, ``batch_cancelled``). Failed inputs can be
sent again with ``resubmit_failed()``.

For ``await``: :class:`AsyncBatchJob` has the same methods as coroutines.

Loading into a store, ids kept: ``results.text_embeddings()`` with ``results.ids`` for
LangChain's ``add_embeddings(text_embeddings=..., ids=...)``, and ``results.to_nodes()`` for
LlamaIndex ``TextNode``s with their embeddings set.

File tasks (text-embedding-async-v1 / v2): :class:`FileTaskJob` submits one native
asynchronous task that reads a UTF-8 file of one text per line from a URL, waits, downloads
the result and returns one vector per line, resumable from its ``state_path`` in the same way;
:class:`AsyncFileTaskJob` has the same methods as coroutines.
"""

from dashscope_embeddings.batch._file_task import (
    AsyncFileTaskJob,
    FileTaskError,
    FileTaskJob,
    FileTaskResults,
    FileTaskStatus,
    IncompleteFileTaskError,
)
from dashscope_embeddings.batch._job import AsyncBatchJob, BatchJob
from dashscope_embeddings.batch._plan import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_LINES_PER_FILE,
    fingerprint,
)
from dashscope_embeddings.batch._results import BatchFailure, BatchResults, IncompleteBatchError
from dashscope_embeddings.batch._state import BatchStateError
from dashscope_embeddings.batch._status import JobStatus, PartStatus, WaitTimeoutError

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_LINES_PER_FILE",
    "AsyncBatchJob",
    "AsyncFileTaskJob",
    "BatchFailure",
    "BatchJob",
    "BatchResults",
    "BatchStateError",
    "FileTaskError",
    "FileTaskJob",
    "FileTaskResults",
    "FileTaskStatus",
    "IncompleteBatchError",
    "IncompleteFileTaskError",
    "JobStatus",
    "PartStatus",
    "WaitTimeoutError",
    "fingerprint",
]
