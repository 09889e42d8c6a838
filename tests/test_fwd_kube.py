"""forwarder/kube.py: how the forwarder finds the Kubernetes API (in a pod, or ``--kube-api-url``) and
authenticates, against the API stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fwd_fakes import SELF_TOKEN, SELF_USERNAME
from support.kube_api import FakeKubeApi
from support.tls import loopback_tls

from forwarder.config import ConfigError, RunConfig, parse
from forwarder.kube import KubeApi, KubeError, service_account_username

LEASES = "/apis/coordination.k8s.io/v1/namespaces/forwarder/leases/audit-forwarder-leader"


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(SELF_TOKEN) as server:
        yield server


@pytest.mark.parametrize(("host", "url"), [("10.100.0.1", "https://10.100.0.1:443"),
                                           ("fd00:10:96::1", "https://[fd00:10:96::1]:443")])
def test_in_a_pod_the_api_is_the_service_the_kubelet_names(tmp_path: Path, host: str, url: str) -> None:
    kube = KubeApi(environ={"KUBERNETES_SERVICE_HOST": host}, token_path=str(tmp_path / "token"), ca_path=None)
    assert kube.url == url


def test_in_a_pod_the_api_is_reached_over_https_verified_by_the_service_account_ca(tmp_path: Path) -> None:
    tls = loopback_tls(tmp_path)
    server = FakeKubeApi(SELF_TOKEN, tls=tls.server)
    try:
        token = tmp_path / "token"
        token.write_text(SELF_TOKEN + "\n")
        port = server.url.rsplit(":", 1)[1]
        kube = KubeApi(environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port},
                       token_path=str(token), ca_path=str(tls.ca_path))
        assert kube.url == f"https://127.0.0.1:{port}"
        assert kube.request("GET", LEASES)[0] == 404  # through TLS, authenticated by the token; no Lease yet
        assert server.requests == [("GET", LEASES)]
    finally:
        server.close()


def test_in_a_pod_an_api_server_the_service_account_ca_did_not_sign_is_refused(tmp_path: Path) -> None:
    impostor = FakeKubeApi(SELF_TOKEN, tls=loopback_tls(tmp_path / "impostor", "impostor").server)
    try:
        token = tmp_path / "token"
        token.write_text(SELF_TOKEN + "\n")
        port = impostor.url.rsplit(":", 1)[1]
        ca = loopback_tls(tmp_path / "cluster").ca_path  # the cluster's CA, which did not sign the impostor
        kube = KubeApi(environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port},
                       token_path=str(token), ca_path=str(ca))
        with pytest.raises(KubeError, match="(?i)certificate verify failed"):
            kube.request("GET", LEASES)
        assert impostor.requests == []  # the token never left the pod
    finally:
        impostor.close()


def test_outside_a_pod_without_a_url_the_error_says_what_to_give() -> None:
    with pytest.raises(KubeError, match="KUBERNETES_SERVICE_HOST is not set.*--kube-api-url"):
        KubeApi(environ={})


def test_in_a_pod_a_missing_token_is_an_error_naming_the_file(tmp_path: Path) -> None:
    kube = KubeApi(environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "1"},
                   token_path=str(tmp_path / "token"), ca_path=None)
    with pytest.raises(KubeError, match="cannot read the service account token .*token"):
        kube.request("GET", LEASES)


def test_the_token_is_sent_and_read_again_for_every_request(tmp_path: Path, api: FakeKubeApi) -> None:
    token = tmp_path / "token"
    token.write_text("expired\n")
    kube = KubeApi(api.url, token_path=str(token), ca_path=None)
    assert kube.request("GET", LEASES)[0] == 401
    token.write_text(SELF_TOKEN + "\n")  # the kubelet rotated it
    assert kube.request("GET", LEASES)[0] == 404  # authenticated; no Lease yet


def test_with_an_explicit_url_and_no_token_file_no_authorization_is_sent(tmp_path: Path) -> None:
    proxy = FakeKubeApi(None)  # as behind kubectl proxy
    try:
        kube = KubeApi(proxy.url, token_path=str(tmp_path / "absent"), ca_path=None)
        assert kube.request("GET", LEASES)[0] == 404 and kube.username is None
        with pytest.raises(KubeError, match=f"GET {LEASES}"):
            KubeApi("http://127.0.0.1:9", token_path=str(tmp_path / "absent"), ca_path=None,
                    timeout_seconds=2).request("GET", LEASES)
    finally:
        proxy.close()


def test_the_service_accounts_name_is_read_from_its_token() -> None:
    assert service_account_username(SELF_TOKEN) == SELF_USERNAME
    assert service_account_username("not-a-jwt") is None
    assert service_account_username("a.b.c") is None


BASE = ["run", "--log-group", "/aws/eks/lab/cluster", "--falco-url", "http://falco:9765/k8s-audit"]


@pytest.mark.parametrize("url", ["127.0.0.1:8001", "ftp://127.0.0.1:8001", "http://", "http://127.0.0.1:99999"])
def test_a_bad_kube_api_url_names_the_flag(url: str) -> None:
    with pytest.raises(ConfigError, match="^--kube-api-url: "):
        parse([*BASE, "--kube-api-url", url], {})


def test_kube_api_url_default_is_in_cluster() -> None:
    config = parse(BASE, {})
    assert isinstance(config, RunConfig) and config.kube_api_url is None
    config = parse(BASE, {"FORWARDER_KUBE_API_URL": "http://127.0.0.1:8001"})
    assert isinstance(config, RunConfig) and config.kube_api_url == "http://127.0.0.1:8001"
