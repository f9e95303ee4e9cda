"""The Celonis API client: base URL, credentials, retries, and the data-job operations."""

from __future__ import annotations

from runner.api.auth import Auth, KeyAuth, OAuthClientAuth, Secret, auth_from_config
from runner.api.baseurl import BASE_URL_ENV, resolve_base_url
from runner.api.celonis_clock import CelonisClock, Offset
from runner.api.client import CelonisClient
from runner.api.errors import (
    ApiError,
    AuthError,
    JobBusyError,
    NetworkError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    UnclearExecuteError,
)
from runner.api.transport import (
    RetryPolicy,
    Transport,
    backoff_delay,
    redact_headers,
    retry_after_seconds,
)
from runner.api.types import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    ExecutionHandle,
    ExecutionInfo,
    JobInfo,
    JobStatus,
    PoolInfo,
)
from runner.urls import is_loopback

__all__ = [
    "ACTIVE_STATUSES",
    "BASE_URL_ENV",
    "FINISHED_STATUSES",
    "ApiError",
    "Auth",
    "AuthError",
    "CelonisClient",
    "CelonisClock",
    "ExecutionHandle",
    "ExecutionInfo",
    "JobBusyError",
    "JobInfo",
    "JobStatus",
    "KeyAuth",
    "NetworkError",
    "NotFoundError",
    "OAuthClientAuth",
    "Offset",
    "PoolInfo",
    "ProtocolError",
    "RateLimitedError",
    "RetryPolicy",
    "Secret",
    "ServerError",
    "Transport",
    "UnclearExecuteError",
    "auth_from_config",
    "backoff_delay",
    "is_loopback",
    "redact_headers",
    "resolve_base_url",
    "retry_after_seconds",
]
