"""Session fixtures of the beyond-one-node tests: certificates, TLS servers, a cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.beyond.cluster import LocalCluster, local_cluster
from tests.beyond.servers import Certificates, TlsServer, make_certificates, tls_server

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[TlsServer]:
    """TLS without client certificates."""
    with tls_server(tmp_path_factory.mktemp("tls"), certs, require_client_certs=False) as up:
        yield up


@pytest.fixture(scope="session")
def mtls(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[TlsServer]:
    """TLS that requires a client certificate signed by the CA."""
    with tls_server(tmp_path_factory.mktemp("mtls"), certs, require_client_certs=True) as up:
        yield up


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """3 masters + 3 replicas, shared by the tests that do not kill a node."""
    with local_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running
