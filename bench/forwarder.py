"""The floor for our stack: the least a Starlette + aiohttp proxy does, and nothing else.

Reads the body, POSTs it to the upstream with one pooled ``aiohttp.ClientSession``, returns the
bytes. Served by uvicorn (uvloop + httptools) with the options ``gateway serve`` uses.

    python -m bench.forwarder --upstream http://127.0.0.1:8000 --port 9000
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.settings import Settings


def create_app(upstream: str, pool_size: int = 512) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=pool_size)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            app.state.session = session
            yield

    async def forward(request: Request) -> Response:
        session: aiohttp.ClientSession = request.app.state.session
        body = await request.body()
        headers = {"Content-Type": request.headers.get("content-type", "application/json")}
        async with session.post(upstream + request.url.path, data=body, headers=headers) as reply:
            data = await reply.read()
            return Response(data, status_code=reply.status, media_type=reply.content_type)

    return Starlette(routes=[Route("/{path:path}", forward, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    options = Settings(host=args.host, port=args.port, log_level="warning").uvicorn_options()
    options.pop("http", None)  # the reference runs uvicorn's own httptools protocol, as before
    app = create_app(args.upstream.rstrip("/"))
    uvicorn.run(app, loop="uvloop", http="httptools", **options)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
