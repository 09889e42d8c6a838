"""The Kubernetes API, as the checkpoint's ConfigMaps and the Lease use it: JSON over HTTP with the pod's token.

In a pod: ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, the service account's CA and its
token, read again on every request (the kubelet rotates projected tokens). Elsewhere an explicit URL, e.g.
``http://127.0.0.1:8001`` from ``kubectl proxy``, which authenticates for us: there a missing token file
means no Authorization header.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
FIELD_MANAGER = "falco-eks-forwarder"
"""How the forwarder's writes are named in an object's managedFields (the API server would take the User-Agent)."""


class KubeError(Exception):
    """The API could not be reached, or is not configured; the message says why."""


def service_account_username(token: str) -> str | None:
    """``sub`` of a service account token (a JWT): ``system:serviceaccount:<ns>:<sa>``; None if unreadable.
    Only read, never trusted for anything but recognising our own writes in the audit log."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    sub = payload.get("sub") if isinstance(payload, dict) else None
    return sub if isinstance(sub, str) and sub.startswith("system:serviceaccount:") else None


class KubeApi:
    """Requests to one API server; ``request`` answers (status, JSON document) or raises KubeError."""

    def __init__(
        self,
        api_url: str | None = None,
        *,
        token_path: str = f"{SERVICE_ACCOUNT_DIR}/token",
        ca_path: str | None = f"{SERVICE_ACCOUNT_DIR}/ca.crt",
        environ: Mapping[str, str] | None = None,
        http: urllib3.PoolManager | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._token_path = token_path
        self._token_required = api_url is None
        if api_url is None:
            env = os.environ if environ is None else environ
            host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise KubeError("KUBERNETES_SERVICE_HOST is not set (not running in a pod?); "
                                "give --kube-api-url to use another API server")
            api_url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        self.url = api_url.rstrip("/")
        if http is None:
            kwargs: dict[str, Any] = {"retries": False, "timeout": urllib3.Timeout(total=timeout_seconds)}
            if self.url.startswith("https://"):
                kwargs["cert_reqs"] = ssl.CERT_REQUIRED
                if ca_path is not None and Path(ca_path).is_file():
                    kwargs["ca_certs"] = ca_path
            http = urllib3.PoolManager(num_pools=1, maxsize=4, **kwargs)
        self._http = http
        try:
            self.username = service_account_username(Path(token_path).read_text())
        except OSError:
            self.username = None

    def path(self, api: str, namespace: str, resource: str, name: str | None = None) -> str:
        """``/<api>/namespaces/<ns>/<resource>[/<name>]``, e.g. api ``api/v1`` or ``apis/coordination.k8s.io/v1``."""
        collection = f"/{api}/namespaces/{quote(namespace, safe='')}/{resource}"
        return collection if name is None else f"{collection}/{quote(name, safe='')}"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        try:
            headers["Authorization"] = f"Bearer {Path(self._token_path).read_text().strip()}"
        except OSError as exc:
            if self._token_required:
                raise KubeError(f"cannot read the service account token {self._token_path}: {exc}") from exc
        return headers

    def request(self, method: str, path: str, body: bytes | Mapping[str, Any] | None = None,
                timeout_seconds: float | None = None) -> tuple[int, dict[str, Any]]:
        """One request; ``body`` is JSON (bytes as they are, a mapping encoded here)."""
        data = body if body is None or isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        kwargs: dict[str, Any] = {}
        if timeout_seconds is not None:
            kwargs["timeout"] = urllib3.Timeout(total=timeout_seconds)
        if method in ("POST", "PUT", "PATCH"):
            path += f"?fieldManager={FIELD_MANAGER}"
        try:
            response = self._http.request(method, self.url + path, body=data, headers=self._headers(), **kwargs)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        try:
            doc = json.loads(response.data) if response.data else {}
        except ValueError:
            doc = {}
        return response.status, doc if isinstance(doc, dict) else {}
