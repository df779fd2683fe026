"""The alert rules and the dashboard query metrics notify really exports, and every alert's runbook exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
METRICS_SOURCE = (ROOT / "src" / "notify" / "adapters" / "telemetry" / "metrics.py").read_text()
EXPORTED = set(re.findall(r'"(notify_[a-z_]+)"', METRICS_SOURCE))
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def _metrics_in(expr: str) -> set[str]:
    names = set(re.findall(r"\bnotify_[a-z_]+", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def _anchors(markdown: str) -> set[str]:
    return {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", markdown, re.M)
    }


def test_every_alert_queries_exported_metrics_and_links_a_runbook_that_exists() -> None:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "notify-rules.yaml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert len(alerts) >= 5
    for alert in alerts:
        used = _metrics_in(alert["expr"])
        assert used and used <= EXPORTED, (alert["alert"], used - EXPORTED)
        page, _, anchor = alert["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md" and anchor in _anchors(OPERATIONS), alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical")


def test_every_dashboard_panel_queries_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "notify-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        used = _metrics_in(expr)
        assert used and used <= EXPORTED, (expr, used - EXPORTED)
