"""deploy/prometheus/alerts.yml and deploy/grafana/keboola-sync.json are built on the metrics the daemon
really serves: both parse, and every keboola_sync_* name, label selector and `by (...)` label they use is
one /metrics exposes (promtool is not available here; this is the part of its check that matters most)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from keboola_sync.metrics import Metrics
from keboola_sync.monitor import prometheus_text

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "keboola-sync.json"
METRIC = re.compile(r"\bkeboola_sync_[a-z_]+\b")
SELECTOR = re.compile(r"\b(keboola_sync_[a-z_]+)\{([^}]*)\}")
BY = re.compile(r"\bby \(([^)]*)\)")
DURATION = re.compile(r"^\d+[smhd]$")


def served() -> dict[str, set[str]]:
    """Every sample name /metrics can carry, with its label names (each series made to appear once)."""
    metrics = Metrics()
    metrics.count_outcome("loaded")
    metrics.count_retry("503")
    metrics.upload_finished("x.csv", 10, 0.1)
    metrics.job_finished(1.0)
    metrics.set_observer_mode("native")
    text = prometheus_text(metrics.snapshot(), [{"state": "synced"}])
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def check_expression(expr: str, names: dict[str, set[str]]) -> None:
    used = set(METRIC.findall(expr))
    assert used, f"no keboola_sync metric in {expr!r}"
    assert used <= set(names), f"{expr!r} uses {sorted(used - set(names))}, which /metrics does not serve"
    for metric, selector in SELECTOR.findall(expr):
        labels = {m.group(1) for m in re.finditer(r"(\w+)\s*(?:=~|!=|!~|=)", selector)}
        assert labels <= names[metric], f"{expr!r}: {metric} has no label(s) {sorted(labels - names[metric])}"
    offered = set().union(*(names[m] for m in used))
    for group in BY.findall(expr):
        labels = {label.strip() for label in group.split(",")}
        assert labels <= offered, (
            f"{expr!r}: by ({group}) names labels {sorted(labels - offered)} none of its metrics has"
        )
    assert expr.count("(") == expr.count(")"), f"unbalanced parentheses in {expr!r}"


def test_alert_rules_parse_and_use_served_metrics() -> None:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    names = served()
    by_name = {rule["alert"]: rule for rule in rules}
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert DURATION.match(rule["for"]) and rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        if "keboola_sync_" in rule["expr"]:
            check_expression(rule["expr"], names)
    # The three the deployment docs promise.
    assert by_name["KeboolaSyncFilesFailed"]["expr"] == 'keboola_sync_files{state="failed"} > 0'
    assert by_name["KeboolaSyncFilesFailed"]["for"] == "15m"
    assert "keboola_sync_last_keboola_contact_timestamp_seconds" in by_name["KeboolaSyncNoKeboolaContact"]["expr"]
    assert by_name["KeboolaSyncDown"]["expr"] == 'up{job="keboola-sync"} == 0'


def test_grafana_dashboard_parses_and_every_panel_uses_served_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    names = served()
    panels = dashboard["panels"]
    assert dashboard["uid"] == "keboola-sync" and len(panels) >= 10
    assert len({p["id"] for p in panels}) == len(panels)
    used: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            check_expression(target["expr"], names)
            used |= set(METRIC.findall(target["expr"]))
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in names}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert shown == families, f"metrics served but not on the dashboard: {sorted(families - shown)}"
