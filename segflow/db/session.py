"""Build a cassandra-driver Cluster from settings (auth, TLS, load balancing, timeouts).

One place decides how segflow connects, so the consumer, the uploader, migrations and the
export API all honour the same auth/TLS options.
"""

from __future__ import annotations

import ssl
from typing import Any

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)

from segflow.settings import CassandraSettings


def build_cluster(settings: CassandraSettings, **overrides: Any) -> Cluster:
    """A Cluster configured from ``settings``; ``overrides`` go to the Cluster constructor."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc)),
        request_timeout=settings.request_timeout_s,
    )
    kwargs: dict[str, Any] = {
        "contact_points": settings.contact_points,
        "port": settings.port,
        "execution_profiles": {EXEC_PROFILE_DEFAULT: profile},
        "connect_timeout": settings.connect_timeout_s,
        "reconnection_policy": ExponentialReconnectionPolicy(0.5, 30.0),
        "protocol_version": 5,
    }
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else ""
        kwargs["auth_provider"] = PlainTextAuthProvider(settings.username, password)
    if settings.tls_ca_file or settings.tls_cert_file:
        context = ssl.create_default_context(cafile=settings.tls_ca_file)
        context.check_hostname = settings.tls_verify_hostname
        if settings.tls_cert_file:
            context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        kwargs["ssl_context"] = context
    kwargs.update(overrides)
    return Cluster(**kwargs)


def connect(settings: CassandraSettings, keyspace: str | None = None) -> tuple[Cluster, Session]:
    """Connect and return (cluster, session); the caller shuts the cluster down."""
    cluster = build_cluster(settings)
    try:
        session = cluster.connect(keyspace)
    except Exception:
        cluster.shutdown()
        raise
    return cluster, session
