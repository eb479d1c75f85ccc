"""A lean HTTP/1.1 client for the buffered hot path toward model servers: keep-alive
connections per origin on asyncio protocols, replies parsed by ``httptools`` (llhttp, the
parser uvicorn uses), whole replies only (no streaming).

- ``errors``: what can go wrong, sorted by whether the request may have left.
- ``wire``: the request's head in bytes.
- ``connection``: one connection, one exchange at a time, its reply parsed as it arrives.
- ``client``: a pool of connections per origin, the shared connection limit, ``Client``.
"""
