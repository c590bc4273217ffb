"""Storage events: `POST /v2/storage/events` and the list (§12 "POST /v2/storage/events").

keboola-streamlit posts an event after every read and write, kbagent posts usage events; both fail
(a red error in the app) when the route is missing. The answer is 201 with a string `id` and a
`uuid`; the event is stored as `ext.<component>.<configurationId>` and listed newest first.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask, Response, g

from keboola_emulator import model
from keboola_emulator.context import Context
from keboola_emulator.errors import ApiError
from keboola_emulator.routes.common import branch_route, json_response, params, run_id
from keboola_emulator.tokens import Token

EVENT_TYPES = ("info", "success", "warn", "error")


def register(app: Flask, ctx: Context) -> None:
    route = branch_route(app)

    @route("/events", ["POST"], branch_aware=True)
    def event_create() -> Response:
        token: Token = g.token
        p = params()
        event = _event_body(p, token)
        event_uuid = str(uuid.uuid4())
        created = model.now()
        event_id = ctx.store.insert_event(event, event_uuid, created)
        return json_response(_render(event_id, event_uuid, created, event), 201)

    @route("/events", ["GET"], branch_aware=True)
    def events_list() -> Response:
        p = params()
        limit = min(_int(p.get("limit"), 100), 1000)
        events = ctx.store.list_events(limit=10_000, offset=0)
        if p.get("runId"):
            events = [e for e in events if e.get("runId") == str(p["runId"])]
        if p.get("component"):
            events = [e for e in events if e.get("component") == str(p["component"])]
        offset = _int(p.get("offset"), 0)
        page = events[offset : offset + limit]
        return json_response([_render(e.pop("id"), e.pop("uuid"), e.pop("created"), e) for e in page])


def _event_body(p: dict[str, Any], token: Token) -> dict[str, Any]:
    component = str(p.get("component") or "")
    message = str(p.get("message") or "")
    problems = [name for name, value in (("component", component), ("message", message)) if not value]
    if problems:
        raise ApiError(
            400,
            "validation.failed",
            "Invalid request:\n" + "\n".join(f" - {name}: This value should not be blank." for name in problems),
            errors=[{"key": name, "message": "This value should not be blank."} for name in problems],
        )
    event_type = str(p.get("type") or "info")
    if event_type not in EVENT_TYPES:
        raise ApiError(
            400,
            "validation.failed",
            f"Invalid request:\n - type: The value {event_type} is not valid. Allowed: {', '.join(EVENT_TYPES)}.",
            errors=[{"key": "type", "message": f"Allowed: {', '.join(EVENT_TYPES)}."}],
        )
    configuration_id = str(p.get("configurationId") or "")
    duration = p.get("duration")
    return {
        "event": f"ext.{component}.{configuration_id}",
        "component": component,
        "configurationId": configuration_id or None,
        "message": message,
        "description": str(p.get("description") or ""),
        "type": event_type,
        "runId": str(p.get("runId") or run_id() or "") or None,
        "params": p.get("params") if isinstance(p.get("params"), dict) else {},
        "results": p.get("results") if isinstance(p.get("results"), dict) else {},
        # the events API keeps whole seconds only (kbagent's docstring: "ignores floats")
        "performance": {"duration": duration} if isinstance(duration, int) else {},
        "token": {"id": token.id, "name": token.description},
        "attachments": [],
    }


def _render(event_id: int, event_uuid: str, created: str, event: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(event_id), "uuid": event_uuid, "created": created, **event}


def _int(value: Any, default: int) -> int:
    return int(value) if str(value or "").isdigit() else default
