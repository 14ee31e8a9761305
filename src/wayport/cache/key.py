"""The simple-cache key: which requests share one cached answer.

Two requests share an entry when they would get the same answer: the same provider-normalised
request (every parameter; ``stream`` and ``stream_options`` only change the framing, so a stream
and a non-stream request share one entry), the same provider (and target), the same endpoint,
and the same partition. The partition is ``x-portkey-metadata`` unless
``x-portkey-cache-namespace`` is given, which replaces it (Portkey's hosted rule). The
workspace always takes part: entries are never shared across tenants.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

# Bumped whenever the canonical form changes, so old entries stop matching instead of misleading.
KEY_VERSION = 1

# Body fields that only decide how the answer is framed on the wire, never what it says.
FRAMING_PARAMS = frozenset({"stream", "stream_options"})


def canonical_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without the framing fields, with integral float values at the top level written
    as integers (``"temperature": 1.0`` and ``1`` ask for the same answer)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name in FRAMING_PARAMS:
            continue
        if type(value) is float and value.is_integer():
            value = int(value)
        out[name] = value
    return out


def cache_key(
    *,
    provider: str,
    endpoint: str,
    params: Mapping[str, Any],
    metadata: Mapping[str, Any],
    namespace: str | None,
    workspace: str | None = None,
    target: str | None = None,
) -> str:
    """The SHA-256 hex digest of the canonical JSON (sorted keys) of the request and its partition.

    ``params`` is the request as sent to the provider's translator (``override_params`` applied,
    ``portkey-default`` resolved). ``target`` names the upstream when the provider alone does not
    (an Azure deployment, a ``custom_host``); leave it ``None`` otherwise. A non-empty
    ``namespace`` replaces ``metadata`` in the partition.
    """
    material: dict[str, Any] = {
        "v": KEY_VERSION,
        "provider": provider,
        "endpoint": str(endpoint),
        "params": canonical_params(params),
        "workspace": workspace,
    }
    if target is not None:
        material["target"] = target
    if namespace:
        material["namespace"] = namespace
    else:
        material["metadata"] = metadata
    try:
        encoded = orjson.dumps(material, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise ValueError(f"the request cannot be used as a cache key: {exc}") from None
    return hashlib.sha256(encoded).hexdigest()
