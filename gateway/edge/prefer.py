"""The ``Prefer`` request header (RFC 7240): is ``respond-async`` among the preferences?"""

from __future__ import annotations

from gateway.headers import Headers


def preferences(value: str) -> list[str]:
    """The preference tokens of one ``Prefer`` value, lower case: preferences are separated by
    commas (outside quoted strings), each ``token [= value] *( ; parameter )``."""
    tokens: list[str] = []
    part: list[str] = []
    quoted = escaped = False
    for char in value + ",":
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            text = "".join(part)
            token = text.split(";", 1)[0].split("=", 1)[0].strip().lower()
            if token:
                tokens.append(token)
            part = []
            continue
        part.append(char)
    return tokens


def prefers_async(headers: Headers) -> bool:
    """Whether any ``Prefer`` field (there may be several) asks ``respond-async``."""
    return any("respond-async" in preferences(v) for v in headers.getall("prefer"))
