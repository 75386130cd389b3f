"""Turn MLMD property values that are protobufs (struct, proto) into JSON text.

Both readers call these functions, so both produce the same text for the same value:
keys sorted, no whitespace, non-ASCII kept as is. A ``proto`` value (``google.protobuf.Any``)
whose message type is unknown to the running process becomes
``{"@type": type_url, "value": base64}``, never an error.
"""

from __future__ import annotations

import base64
import json

from google.protobuf import any_pb2, json_format, struct_pb2

__all__ = ["STRUCT_PREFIX", "struct_json", "struct_text_json", "any_json", "any_bytes_json", "column_bytes"]

# How MLMD stores a Struct in the string_value column: prefix + base64(serialized Struct).
STRUCT_PREFIX = "mlmd-struct::"


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def struct_json(value: struct_pb2.Struct) -> str:
    """JSON text of a ``google.protobuf.Struct``."""
    return _dumps(json_format.MessageToDict(value))


def struct_text_json(text: str) -> str:
    """JSON text of a Struct as MLMD stores it in SQL (``mlmd-struct::<base64>``)."""
    value = struct_pb2.Struct()
    value.ParseFromString(base64.b64decode(text[len(STRUCT_PREFIX):]))
    return struct_json(value)


def any_json(value: any_pb2.Any) -> str:
    """JSON text of a ``google.protobuf.Any``; opaque form when its type is unknown here."""
    try:
        return _dumps(json_format.MessageToDict(value))
    except Exception:  # unknown message type or undecodable payload
        return _dumps({"@type": value.type_url, "value": base64.b64encode(value.value).decode("ascii")})


def column_bytes(blob: bytes | str) -> bytes:
    """Bytes of an MLMD blob column; MLMD's SQLite backend stores them base64-encoded as text."""
    if isinstance(blob, str):
        try:
            return base64.b64decode(blob, validate=True)
        except ValueError:
            return blob.encode("utf-8")
    return bytes(blob)


def any_bytes_json(blob: bytes | str) -> str:
    """JSON text of a serialized ``google.protobuf.Any`` (the MLMD ``proto_value`` column)."""
    blob = column_bytes(blob)
    value = any_pb2.Any()
    try:
        value.ParseFromString(bytes(blob))
    except Exception:
        return _dumps({"@type": None, "value": base64.b64encode(bytes(blob)).decode("ascii")})
    return any_json(value)
