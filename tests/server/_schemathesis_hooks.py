"""schemathesis hooks (SCHEMATHESIS_HOOKS): send generated msgpack bodies encoded."""

from __future__ import annotations

from typing import Any

import msgspec
import schemathesis


@schemathesis.serializer("application/msgpack")
def msgpack_body(ctx: Any, value: Any) -> dict[str, Any]:
    try:
        return {"data": msgspec.msgpack.encode(value)}
    except OverflowError:
        # msgpack holds no integer this large: send the JSON text, which the server
        # must refuse like any other body that is not msgpack.
        return {"data": msgspec.json.encode(value)}
