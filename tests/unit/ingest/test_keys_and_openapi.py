"""API-key grants (tenants, permissions, key files), the presented key, the OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from pydantic import SecretStr
from starlette.requests import Request

from http_api.export.auth import ApiKeys
from http_api.ingest.guard import presented_key, segmenter_error
from http_api.ingest.openapi import openapi_document
from segflow.settings import ApiKeyGrant, ServeSettings


def test_grants_bind_keys_to_tenants_and_plain_keys_stay_export_only(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("plain-key\n")
    (tmp_path / "bound").write_text(
        json.dumps({"key": "bound-key", "permissions": ["ingest"], "networks": ["7"]})
    )
    (tmp_path / "broken").write_text('{"key": "k", "permissions": []}')
    keys = ApiKeys(
        [SecretStr("static")],
        tmp_path,
        [ApiKeyGrant(key=SecretStr("ops"), permissions=["ingest", "export"], datamarts=["*"])],
    )
    assert keys.count() == 4  # the broken file is skipped
    plain = keys.grant("plain-key")
    assert plain is not None
    assert plain.allows("export")
    assert not plain.allows("ingest")
    bound = keys.grant("bound-key")
    assert bound is not None
    assert bound.network("7")
    assert not bound.network("8")
    assert not bound.datamart("7")
    assert not bound.segmenter
    assert keys.identify("bound-key") is None  # no export permission
    ops = keys.grant("ops")
    assert ops is not None
    assert ops.datamart("anything")
    assert keys.identify("ops") == ops.key_id
    assert keys.grant("k") is None
    assert keys.grant("") is None
    assert keys.grant(None) is None


def test_grants_come_from_one_json_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SEGFLOW_SERVE__API_KEY_GRANTS",
        '[{"key": "k1", "permissions": ["ingest"], "datamarts": ["1"], "segmenter": true}]',
    )
    grants = ServeSettings().serve.api_key_grants
    assert [g.key.get_secret_value() for g in grants] == ["k1"]
    assert grants[0].segmenter
    assert "k1" not in repr(grants)


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "method": "GET", "path": "/"})


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"Authorization": "tok"}, "tok"),
        ({"Authorization": "Bearer tok"}, "tok"),
        ({"Authorization": "bearer  tok "}, "tok"),
        ({"x-api-key": "tok"}, "tok"),
        ({}, None),
    ],
)
def test_the_key_is_taken_from_authorization_or_x_api_key(
    headers: dict[str, str], key: str | None
) -> None:
    assert presented_key(_request(headers)) == key


def test_segmenter_failures_use_the_seed_envelope() -> None:
    assert segmenter_error(500, "boom", None) == {
        "success": False,
        "message": "Internal Server Error",
        "error": "boom",
    }


def test_the_openapi_document_is_valid() -> None:
    validate(openapi_document())
