"""mediarithmics document imports (V008): the import definitions and their executions' ids.

An import is a row per (datamart, import id); its executions are ordinary ``executions`` rows
(import name ``document_import:<id>``), listed per import by ``document_import_executions``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from segflow.db.session import aware


@dataclass(frozen=True)
class DocumentImport:
    """One document import of a datamart."""

    datamart_id: str
    import_id: str
    document_type: str
    mime_type: str
    encoding: str
    name: str
    created_at: datetime

    @property
    def import_name(self) -> str:
        """The ``import_name`` of its executions (``segflow executions list``)."""
        return import_name_of(self.import_id)


def import_name_of(import_id: str) -> str:
    """The executions' import name of a document import."""
    return f"document_import:{import_id}"


class DocumentImportStore:
    """Cassandra access to ``document_imports`` and ``document_import_executions``."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._insert = session.prepare(
            "INSERT INTO {ks}.document_imports (datamart_id, import_id, document_type, "
            "mime_type, encoding, name, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self._get = session.prepare(
            "SELECT datamart_id, import_id, document_type, mime_type, encoding, name, created_at "
            "FROM {ks}.document_imports WHERE datamart_id = ? AND import_id = ?"
        )
        self._add_execution = session.prepare(
            "INSERT INTO {ks}.document_import_executions (import_id, created_at, execution_id) "
            "VALUES (?, ?, ?)"
        )
        self._executions = session.prepare(
            "SELECT execution_id FROM {ks}.document_import_executions WHERE import_id = ? LIMIT ?"
        )

    def create(
        self, datamart_id: str, document_type: str, mime_type: str, encoding: str, name: str
    ) -> DocumentImport:
        """Record a new import."""
        created = DocumentImport(
            datamart_id,
            uuid.uuid4().hex,
            document_type,
            mime_type,
            encoding,
            name,
            datetime.now(tz=UTC),
        )
        self._session.execute(
            self._insert,
            (
                datamart_id,
                created.import_id,
                document_type,
                mime_type,
                encoding,
                name,
                created.created_at,
            ),
        )
        return created

    def get(self, datamart_id: str, import_id: str) -> DocumentImport | None:
        """The import, if it exists in this datamart."""
        row = self._session.execute(self._get, (datamart_id, import_id)).one()
        if row is None:
            return None
        return DocumentImport(
            row.datamart_id,
            row.import_id,
            row.document_type,
            row.mime_type,
            row.encoding,
            row.name,
            aware(row.created_at) or datetime.now(tz=UTC),
        )

    def add_execution(self, import_id: str, execution_id: str, created_at: datetime) -> None:
        """List an execution under its import."""
        self._session.execute(self._add_execution, (import_id, created_at, execution_id))

    def execution_ids(self, import_id: str, limit: int) -> list[str]:
        """The import's execution ids, newest first."""
        rows = self._session.execute(self._executions, (import_id, limit))
        return [str(row.execution_id) for row in rows]
