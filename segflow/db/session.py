"""Build a cassandra-driver Cluster from settings (auth, TLS, load balancing, timeouts).

One place decides how segflow connects, so the consumer, the uploader, migrations and the
export API all honour the same auth/TLS options.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from typing import Any, overload

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import SimpleStatement

from segflow.errors import SegflowError
from segflow.settings import CassandraSettings

# Execution profile of reads that want their own consistency (``cassandra.read_consistency``):
# pass ``execution_profile=READ_PROFILE`` to ``execute``.
READ_PROFILE = "read"


def execution_profiles(settings: CassandraSettings) -> dict[Any, ExecutionProfile]:
    """The default profile (writes and LWTs) and the ``read`` profile, from the settings.

    Token-aware routing in both, so a grouped batch goes to a replica of its rows. Nothing
    set a consistency before, so every statement ran at the driver's LOCAL_ONE.
    """

    def policy() -> TokenAwarePolicy:
        return TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc))

    serial = ConsistencyLevel.name_to_value[settings.serial_consistency]
    return {
        EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=policy(),
            request_timeout=settings.request_timeout_s,
            consistency_level=ConsistencyLevel.name_to_value[settings.write_consistency],
            serial_consistency_level=serial,
        ),
        READ_PROFILE: ExecutionProfile(
            load_balancing_policy=policy(),
            request_timeout=settings.request_timeout_s,
            consistency_level=ConsistencyLevel.name_to_value[settings.read_consistency],
            serial_consistency_level=serial,
        ),
    }


def build_cluster(settings: CassandraSettings, **overrides: Any) -> Cluster:
    """A Cluster configured from ``settings``; ``overrides`` go to the Cluster constructor."""
    kwargs: dict[str, Any] = {
        "contact_points": settings.contact_points,
        "port": settings.port,
        "execution_profiles": execution_profiles(settings),
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


class KeyspaceSession:
    """A driver session whose statements target one configurable keyspace, without ``USE``.

    Cassandra 5 warns about prepared statements whose tables are not fully qualified, and the
    keyspace is a setting (tests use one per session), so CQL in segflow names tables as
    ``{ks}.table``; this wrapper substitutes the keyspace in prepared and plain-text statements
    alike. Everything else is delegated to the driver session.
    """

    def __init__(self, session: Session, keyspace: str) -> None:
        self.session = session
        self.keyspace = keyspace

    def qualify(self, query: str) -> str:
        """``query`` with every ``{ks}`` replaced by the keyspace."""
        return query.replace("{ks}", self.keyspace)

    def prepare(self, query: str) -> Any:
        """Prepare ``query`` (``{ks}.table`` names) against the keyspace."""
        return self.session.prepare(self.qualify(query))

    def execute(self, query: Any, parameters: Any = None, **kwargs: Any) -> Any:
        """Execute a prepared, bound or plain-text statement against the keyspace."""
        return self.session.execute(self._statement(query), parameters, **kwargs)

    def execute_async(self, query: Any, parameters: Any = None, **kwargs: Any) -> Any:
        """Asynchronous ``execute``."""
        return self.session.execute_async(self._statement(query), parameters, **kwargs)

    def _statement(self, query: Any) -> Any:
        if isinstance(query, str):
            return SimpleStatement(self.qualify(query), keyspace=self.keyspace)
        return query

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def connect(settings: CassandraSettings, keyspace: str | None = None) -> tuple[Cluster, Any]:
    """Connect and return (cluster, session); the caller shuts the cluster down.

    With ``keyspace`` the session is a ``KeyspaceSession`` bound to it.
    """
    cluster = build_cluster(settings)
    try:
        session = cluster.connect()
    except Exception:
        cluster.shutdown()
        raise
    return cluster, (KeyspaceSession(session, keyspace) if keyspace else session)


def connect_or_fail(
    settings: CassandraSettings, keyspace: str | None = None
) -> tuple[Cluster, Any]:
    """``connect`` for commands: an unreachable Cassandra is one clear line, not a traceback."""
    try:
        return connect(settings, keyspace)
    except Exception as exc:
        raise SegflowError(
            f"cannot connect to Cassandra at {','.join(settings.contact_points)}:"
            f"{settings.port}: {exc}"
        ) from None


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """The driver returns timestamps as naive UTC datetimes: make them timezone-aware."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
