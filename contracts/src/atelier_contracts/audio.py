"""The narration cache: speech already made, by (text, voice, provider, model).

The provider router looks here before it calls a speech provider: a repeated narration is a
hit and costs no provider call. Entries live in a JetStream KV bucket (``AUDIO_CACHE_BUCKET``),
shared by the router replicas and read by the gateway (``GET /v1/audio-cache``). A hit whose
blob was released is made again and the entry repaired; entries not used for the cache's TTL
are pruned on a schedule.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec

from atelier_contracts.common import BlobRef


def cache_key(tenant: str, text: str, voice: str, provider: str, model: str) -> str:
    """A KV key (hex) for the four things that make the same speech, within one tenant (whose
    texts other tenants must neither see nor evict)."""
    return hashlib.sha256("\x1f".join((tenant, text, voice, provider, model)).encode()).hexdigest()[:40]


class AudioCacheEntry(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    tenant: str
    voice: str
    provider: str
    model: str
    text_sha256: str
    text_preview: str
    """The first 80 characters, so a person can tell entries apart."""
    blob: BlobRef
    hits: int = 0
    """Times a narration was served from this entry instead of a provider call."""
    repairs: int = 0
    """Times the entry's blob was gone and the speech made again."""
    created_at: datetime
    updated_at: datetime
    """The last time it was made or served: the TTL counts from here."""


entry_decoder: msgspec.json.Decoder[AudioCacheEntry] = msgspec.json.Decoder(AudioCacheEntry)
