"""Job routes (§6): list (newest first) and detail."""

from __future__ import annotations

from flask import Flask, Response

from keboola_emulator.context import Context
from keboola_emulator.errors import ApiError
from keboola_emulator.routes.common import (
    branch_route,
    json_response,
    params,
    url,
)
from keboola_emulator.views import job_json


def register(app: Flask, ctx: Context) -> None:
    route = branch_route(app)

    # -- jobs (§6) -----------------------------------------------------------------------------
    @route("/jobs", ["GET"])
    def jobs_list() -> Response:
        p = params()
        limit = min(int(p.get("limit") or 100), 1000)
        return json_response([job_json(j, url(ctx)) for j in ctx.store.list_jobs(limit, int(p.get("offset") or 0))])

    @route("/jobs/<job_id>", ["GET"])
    def job_detail(job_id: str) -> Response:
        j = ctx.store.get_job(int(job_id)) if job_id.isdigit() else None
        if j is None:
            raise ApiError(404, "storage.jobs.notFound", f"Job {job_id} not found.")
        return json_response(job_json(j, url(ctx)))
