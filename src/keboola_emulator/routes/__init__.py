"""The Storage API routes, one module per resource; `register_all` wires them into the app."""

from __future__ import annotations

from flask import Flask

from keboola_emulator.context import Context
from keboola_emulator.routes import buckets, control, events, files, jobs, metadata, tabledefs, tables, tokens


def register_all(app: Flask, ctx: Context) -> None:
    for module in (tokens, buckets, tables, tabledefs, metadata, files, jobs, events, control):
        module.register(app, ctx)
