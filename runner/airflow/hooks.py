"""The Celonis connection type for Airflow, and the client built from it.

A `celonis` connection holds: host = the base URL, password = the API key (or
the OAuth client secret), login = the OAuth client id, extra = `{"auth_type":
"api_key" | "app_key" | "oauth", "scope": "..."}`. Without one, the manifest's
environment variables are used (see `credentials.resolve_endpoint`). Every
secret found is registered with Airflow's log masker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret

from runner.airflow.credentials import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    AirflowConnection,
    ApiSettings,
    Endpoint,
    make_client,
    make_clock,
    resolve_endpoint,
)
from runner.api import ApiError, CelonisClient
from runner.errors import RunnerError


def lookup_connection(conn_id: str | None) -> AirflowConnection | None:
    if not conn_id:
        return None
    try:
        connection: AirflowConnection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return connection


async def alookup_connection(conn_id: str | None) -> AirflowConnection | None:
    """As `lookup_connection`, from a trigger's event loop (the sync call could deadlock there)."""
    if not conn_id:
        return None
    try:
        connection: AirflowConnection = await BaseHook.aget_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return connection


def endpoint_for(
    settings: ApiSettings, connection: AirflowConnection | None, environ: Mapping[str, str]
) -> Endpoint:
    """The endpoint, with its secrets masked in every Airflow log from now on."""
    endpoint = resolve_endpoint(settings, connection, environ)
    for secret in endpoint.secrets:
        mask_secret(secret)
    return endpoint


class CelonisHook(BaseHook):
    """Builds the `CelonisClient` for a task from a `celonis` connection (or the manifest's variables)."""

    conn_name_attr = "celonis_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Celonis"

    def __init__(
        self,
        celonis_conn_id: str | None = DEFAULT_CONN_ID,
        *,
        settings: ApiSettings | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings or ApiSettings(conn_id=celonis_conn_id)
        self.environ: Mapping[str, str] = os.environ if environ is None else environ

    def endpoint(self) -> Endpoint:
        return endpoint_for(self.settings, lookup_connection(self.settings.conn_id), self.environ)

    def get_conn(self) -> CelonisClient:
        """A client for the connection: the one Airflow's hook protocol asks for."""
        return make_client(self.endpoint(), make_clock(self.environ), self.environ)

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: lists the data pools the credentials can see."""
        try:
            pools = self.get_conn().list_pools()
        except (ApiError, RunnerError) as error:
            return False, str(error)
        return True, f"connected: {len(pools)} data pool(s) visible"
