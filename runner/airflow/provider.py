"""Airflow's provider entry point: registers the `celonis` connection type (no Airflow import).

The connection form comes from here: Airflow 3.3 reads `conn-fields` (stored in
the connection's extra JSON) and `ui-field-behaviour` from the provider info,
not from the hook (its `get_ui_field_behaviour` is deprecated since 3.2).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGE = "celonis-runner"

CONN_FIELDS: dict[str, Any] = {
    "auth_type": {
        "label": "Auth type",
        "description": "api_key (the default): Password holds an API key; app_key: an application"
        " key; oauth: Login holds the OAuth client id and Password its secret",
        "schema": {
            "type": ["string", "null"],
            "default": "api_key",
            "enum": ["api_key", "app_key", "oauth"],
        },
    },
    "scope": {
        "label": "OAuth scope",
        "description": "auth_type oauth only (default integration.data-pools)",
        "schema": {"type": ["string", "null"]},
    },
}
"""Extra fields of the form, stored as keys of the connection's extra JSON."""

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {
        "host": "Base URL",
        "login": "OAuth client id (auth_type oauth only)",
        "password": "API key, application key or OAuth client secret",
    },
    "placeholders": {
        "host": "https://TEAM.REALM.celonis.cloud",
        "password": "the key (never shown again)",
    },
}


def get_provider_info() -> dict[str, Any]:
    """What `apache_airflow_provider` entry points return (Airflow's provider_info schema)."""
    try:
        versions = [version(PACKAGE)]
    except PackageNotFoundError:  # running from a source tree that was not installed
        versions = []
    return {
        "package-name": PACKAGE,
        "name": "Celonis",
        "description": "Run Celonis data jobs from a jobs.yaml manifest: operator, trigger, DAG builder.",
        "versions": versions,
        "connection-types": [
            {
                "hook-class-name": "runner.airflow.hooks.CelonisHook",
                "hook-name": "Celonis",
                "connection-type": "celonis",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
        "hooks": [{"integration-name": "Celonis", "python-modules": ["runner.airflow.hooks"]}],
        "operators": [
            {"integration-name": "Celonis", "python-modules": ["runner.airflow.operators"]}
        ],
        "triggers": [
            {"integration-name": "Celonis", "python-modules": ["runner.airflow.triggers"]}
        ],
    }
