"""The Celonis API client: base URL, credentials, retries, and the data-job operations."""

from __future__ import annotations

from runner.api.auth import Auth, KeyAuth, OAuthClientAuth, Secret, auth_from_config
from runner.api.baseurl import BASE_URL_ENV, resolve_base_url
from runner.api.client import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    CelonisClient,
    ExecutionHandle,
    ExecutionInfo,
    JobInfo,
    JobStatus,
    Observation,
    PoolInfo,
    Settlement,
)
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
from runner.urls import is_loopback

__all__ = [
    "ACTIVE_STATUSES",
    "BASE_URL_ENV",
    "FINISHED_STATUSES",
    "ApiError",
    "Auth",
    "AuthError",
    "CelonisClient",
    "ExecutionHandle",
    "ExecutionInfo",
    "JobBusyError",
    "JobInfo",
    "JobStatus",
    "KeyAuth",
    "NetworkError",
    "NotFoundError",
    "OAuthClientAuth",
    "Observation",
    "PoolInfo",
    "ProtocolError",
    "RateLimitedError",
    "RetryPolicy",
    "Secret",
    "ServerError",
    "Settlement",
    "Transport",
    "UnclearExecuteError",
    "auth_from_config",
    "backoff_delay",
    "is_loopback",
    "redact_headers",
    "resolve_base_url",
    "retry_after_seconds",
]
