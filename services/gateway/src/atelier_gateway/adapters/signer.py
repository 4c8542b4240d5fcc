"""Expiring download links signed with HMAC-SHA256 over the asset id and the expiry time."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from atelier_gateway.app.ports import LinkCheck, SignedLink


class HmacUrlSigner:
    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def sign(self, asset_id: str, now: datetime) -> SignedLink:
        expires = int(now.timestamp()) + self.ttl_s
        return SignedLink(expires=expires, sig=self._mac(asset_id, expires))

    def verify(self, asset_id: str, expires: str | None, sig: str | None, now: datetime) -> LinkCheck:
        if not expires or not sig or not expires.isdigit() or len(expires) > 12:
            return "invalid"
        expected = self._mac(asset_id, int(expires))
        if not hmac.compare_digest(expected.encode(), sig.lower().encode()):
            return "invalid"
        # Only a link this deployment signed learns that it expired: it is the client's own.
        return "ok" if int(expires) >= now.timestamp() else "expired"

    def _mac(self, asset_id: str, expires: int) -> str:
        # The newline separates the fields, so no (id, expiry) pair can mimic another.
        message = f"{asset_id}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
