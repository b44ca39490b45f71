"""Superset's REST API as a resource, for the dashboard asset (assets/dashboards.py)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import dagster as dg

from salespipe_assets.bi import LOCAL_DEFAULT_PASSWORD, LOCAL_DEFAULT_USER, SupersetClient, http_url


class SupersetBI(dg.ConfigurableResource):
    """Superset's REST API. An empty ``url`` means no BI: the dashboard asset skips."""

    url: str = "http://127.0.0.1:8088"
    username: str = LOCAL_DEFAULT_USER
    password: str = LOCAL_DEFAULT_PASSWORD
    timeout_seconds: float = 30

    def unreachable_reason(self) -> str | None:
        if not self.url:
            return "SUPERSET_URL is empty"
        health = http_url(f"{self.url.rstrip('/')}/health")  # a file: or other scheme is a ValueError
        try:
            with urllib.request.urlopen(health, timeout=3) as resp:  # nosec B310  # http(s) checked above
                return None if resp.status == 200 else f"{self.url}/health answered {resp.status}"
        except (OSError, urllib.error.URLError) as exc:
            return f"Superset not reachable at {self.url} ({getattr(exc, 'reason', exc)})"

    def client(self) -> SupersetClient:
        return SupersetClient(self.url, self.username, self.password, timeout=self.timeout_seconds)


def superset_resource() -> SupersetBI:
    """SUPERSET_URL (default the local 127.0.0.1:8088); credentials through dg.EnvVar when set,
    else the local-only default that ``make bi`` creates."""
    creds = {field: dg.EnvVar(var) for field, var in
             (("username", "SUPERSET_ADMIN_USER"), ("password", "SUPERSET_ADMIN_PASSWORD")) if os.environ.get(var)}
    return SupersetBI(url=os.environ.get("SUPERSET_URL", "http://127.0.0.1:8088"), **creds)
