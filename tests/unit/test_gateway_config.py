"""The gateway's settings and link signer: pure, no servers (candidates for tests/unit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atelier_gateway.adapters.signer import HmacUrlSigner
from atelier_gateway.config import DEV_URL_SECRET, ConfigError, Settings

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_defaults_need_only_a_secret() -> None:
    settings = Settings.from_env({"ATELIER_URL_SECRET": "s" * 32})
    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert settings.database_url == "sqlite+aiosqlite:///.state/atelier.db"
    assert settings.blob_dir == Path(".state/blobs")
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert (settings.url_ttl_s, settings.tenant, settings.log_level) == (3600, "default", "INFO")
    assert settings.url_secret == b"s" * 32
    assert not settings.dev_secret
    assert "sss" not in repr(settings)


def test_a_missing_secret_stops_start_up_unless_in_dev_mode() -> None:
    with pytest.raises(ConfigError, match="ATELIER_URL_SECRET is required"):
        Settings.from_env({})
    dev = Settings.from_env({"ATELIER_DEV_MODE": "1"})
    assert dev.url_secret == DEV_URL_SECRET
    assert dev.dev_secret


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ATELIER_URL_SECRET", "short", "at least 16"),
        ("ATELIER_HTTP_PORT", "http", "ATELIER_HTTP_PORT must be an integer"),
        ("ATELIER_HTTP_PORT", "70000", "between"),
        ("ATELIER_URL_TTL_S", "0", "between"),
        ("ATELIER_LOG_LEVEL", "chatty", "ATELIER_LOG_LEVEL"),
        ("ATELIER_SUBMIT_WAIT_S", "soon", "must be a number"),
    ],
)
def test_malformed_values_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"ATELIER_URL_SECRET": "s" * 32, name: value})


def test_signed_links_verify_until_they_expire() -> None:
    signer = HmacUrlSigner(b"k" * 32, ttl_s=60)
    link = signer.sign("ast_1", NOW)
    assert link.expires == int(NOW.timestamp()) + 60
    assert signer.verify("ast_1", str(link.expires), link.sig, NOW + timedelta(seconds=60)) == "ok"
    assert signer.verify("ast_1", str(link.expires), link.sig, NOW + timedelta(seconds=61)) == "expired"
    assert signer.verify("ast_2", str(link.expires), link.sig, NOW) == "invalid"
    assert signer.verify("ast_1", str(link.expires + 1), link.sig, NOW) == "invalid"
    assert HmacUrlSigner(b"x" * 32, ttl_s=60).verify("ast_1", str(link.expires), link.sig, NOW) == "invalid"
    for expires, sig in [(None, link.sig), (str(link.expires), None), ("-1", link.sig), ("1e9", link.sig)]:
        assert signer.verify("ast_1", expires, sig, NOW) == "invalid"
