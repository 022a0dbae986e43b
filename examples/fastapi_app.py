"""interpserve examples.fastapi_app:app --workers 2

A FastAPI app, served by process workers: `--worker-kind auto` (the default) picks them.

Why: FastAPI validates with pydantic, whose core is `pydantic_core._pydantic_core`, an extension
module written in Rust (PyO3) that does not declare support for subinterpreters, so CPython
refuses to load it in one. Before it serves, interpserve imports the app in a subinterpreter of
a throwaway child process; that import fails, and the server starts child processes as workers
instead, saying so at startup:

    INFO:     Worker kind: process, because module 'pydantic_core._pydantic_core' does not
              support subinterpreters (imported through examples.fastapi_app -> fastapi -> ...).

Process workers speak the same protocol and are supervised the same way; each is a whole
Python process, so it costs more memory than an interpreter worker, and CPU-bound requests
still run in parallel. `interpserve check examples.fastapi_app:app` says the same without
serving; `--worker-kind interpreter` refuses to start with a one-line error naming the module.
docs/compatibility.md lists which packages load in subinterpreters.

Routes:
    GET  /              JSON greeting with the worker's pid (not the server's: a child process)
    GET  /items/{id}    path parameter validated as an int (422 otherwise), optional ?q=
    POST /items         JSON body validated by a pydantic model: {"name": str, "price": float > 0,
                        "tags": [str]}; answers 201 with the item and its computed price with tax
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI(title="interpserve FastAPI example")

TAX_RATE = 0.2


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    price: float = Field(gt=0)
    tags: list[str] = []


class PricedItem(Item):
    price_with_tax: float


@app.get("/")
async def root() -> dict[str, object]:
    return {"message": "Hello from FastAPI!", "pid": os.getpid()}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, "q": q}


@app.post("/items", status_code=201)
async def create_item(item: Item) -> PricedItem:
    return PricedItem(**item.model_dump(), price_with_tax=round(item.price * (1 + TAX_RATE), 2))
