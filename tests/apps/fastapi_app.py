"""A FastAPI app: pydantic_core refuses subinterpreters, so `--worker-kind auto` must pick
process workers for it."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def root() -> dict[str, bool]:
    return {"ok": True}
