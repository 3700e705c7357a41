"""Hosts, paths, defaults and environment variable names: constants only."""

from __future__ import annotations

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENVS",
    "COMPATIBLE_PREFIX",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_REGION",
    "DEFAULT_TIMEOUT_S",
    "INITIAL_RETRY_DELAY_S",
    "MAX_RETRY_AFTER_S",
    "MAX_RETRY_DELAY_S",
    "NATIVE_PREFIX",
    "REGION_ENV",
    "REGION_HOSTS",
    "TEXT_EMBEDDING_PATH",
    "MULTIMODAL_EMBEDDING_PATH",
    "COMPATIBLE_EMBEDDINGS_PATH",
    "FILES_PATH",
    "BATCHES_PATH",
    "TASKS_PATH",
    "MAX_RESPONSE_BYTES",
    "WORKSPACE_ENV",
]

API_KEY_ENV = "DASHSCOPE_API_KEY"
# Checked in this order; the second is the name the official SDK reads.
BASE_URL_ENVS = ("DASHSCOPE_BASE_URL", "DASHSCOPE_HTTP_BASE_URL")
WORKSPACE_ENV = "DASHSCOPE_WORKSPACE_ID"
REGION_ENV = "DASHSCOPE_REGION"

DEFAULT_REGION = "cn-beijing"
REGION_HOSTS: dict[str, str] = {
    "cn-beijing": "https://dashscope.aliyuncs.com",
    "ap-southeast-1": "https://dashscope-intl.aliyuncs.com",
    # Taken from the official Python SDK's configuration; no public page names this host yet.
    "cn-hongkong": "https://cn-hongkong.dashscope.aliyuncs.com",
}
NATIVE_PREFIX = "/api/v1"
COMPATIBLE_PREFIX = "/compatible-mode/v1"
TEXT_EMBEDDING_PATH = "/services/embeddings/text-embedding/text-embedding"
MULTIMODAL_EMBEDDING_PATH = "/services/embeddings/multimodal-embedding/multimodal-embedding"
COMPATIBLE_EMBEDDINGS_PATH = "/embeddings"
FILES_PATH = "/files"
BATCHES_PATH = "/batches"
TASKS_PATH = "/tasks"

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_CONCURRENCY = 64
INITIAL_RETRY_DELAY_S = 0.5
# A 429 without Retry-After: the adaptive limit has already stepped back, so try again soon.
INITIAL_THROTTLE_DELAY_S = 0.2
MAX_RETRY_DELAY_S = 8.0
# A server asking for a longer wait than this is not waited for: the RateLimitError carries
# ``retry_after`` and the caller decides.
MAX_RETRY_AFTER_S = 60.0
# Answers larger than this are refused (a misbehaving gateway must not exhaust memory). The
# largest real answer, 25 vectors of 2,560 floats, is about 1.5 MB of JSON.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
