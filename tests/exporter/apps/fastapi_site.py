"""A FastAPI app with an API route, a Starlette route added with ``add_route``, a mounted
``StaticFiles`` and FastAPI's own ``/docs``, ``/redoc`` and ``/openapi.json``:
``tests.exporter.apps.fastapi_site:app``. ``HLTHZ_TEST_FILES`` is the static directory."""

import os

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.staticfiles import StaticFiles

from hlthz.exporter import instrument

app = FastAPI()


@app.get("/api/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


async def legacy(request: Request) -> PlainTextResponse:
    return PlainTextResponse("legacy " + request.path_params["name"])


app.add_route("/legacy/{name}", legacy)
app.mount("/static", StaticFiles(directory=os.environ["HLTHZ_TEST_FILES"]), name="static")
instrument(app)
