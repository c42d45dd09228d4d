"""The baseline: a Starlette hello world under the same uvicorn settings as the receiver."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/webhooks/ghl", hello, methods=["POST"])])
