"""The example alert rules (examples/prometheus-alerts.yml): well-formed, and naming
only metrics that exist. promtool (Debian: `prometheus`) checks and unit-tests them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RULES = EXAMPLES / "prometheus-alerts.yml"
RULE_TESTS = EXAMPLES / "prometheus-alerts.test.yml"

# What the nodes (buffer server, im-endpoint) and the gateway export, and `up`,
# which Prometheus adds to every target. A histogram is named by its family.
METRICS = {
    "up",
    "smslink_link_up",
    "smslink_link_connects_total",
    "smslink_link_refused_connections_total",
    "smslink_link_tx_cursor",
    "smslink_link_ring_in_use",
    "smslink_link_ring_capacity",
    "smslink_link_ack_latency_seconds",
    "smslink_smsc_up",
    "smslink_smsc_mt_submitted_total",
    "smslink_smsc_mt_accepted_total",
    "smslink_smsc_mt_rejected_total",
    "smslink_smsc_mt_temporary_failures_total",
    "smslink_smsc_mt_resubmitted_total",
    "smslink_smsc_mo_received_total",
    "smslink_smsc_mo_backpressured_total",
    "smslink_smsc_mo_deferred_total",
    "smslink_smsc_status_reports_total",
    "smslink_smsc_reports_unknown_total",
    "smslink_smsc_violations_total",
    "smslink_gateway_xmpp_connected",
    "smslink_gateway_users_online",
    "smslink_gateway_chats_total",
    "smslink_gateway_sms_in_total",
    "smslink_gateway_sms_out_total",
    "smslink_gateway_outbox_waiting",
    "smslink_gateway_errors_total",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# PromQL words that look like metric names: functions, operators, aggregations.
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "ignoring", "group_left",
    "on", "and", "or", "unless", "max", "min", "avg",
}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    # Drop label matchers, range selectors and label lists first: no metric names there.
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare))
    return words - PROMQL_WORDS


def known(name: str) -> bool:
    if name in METRICS:
        return True
    return any(name.endswith(s) and name[: -len(s)] in METRICS for s in HISTOGRAM_SUFFIXES)


def test_every_rule_is_a_complete_alert() -> None:
    found = rules()
    assert len(found) >= 10
    names = [r["alert"] for r in found]
    assert len(names) == len(set(names)), names
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["expr"].strip(), rule
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule
        assert rule["annotations"]["summary"].strip(), rule
        if "for" in rule:
            assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), rule


def test_rules_name_only_metrics_that_exist() -> None:
    used: set[str] = set()
    for rule in rules():
        names = metric_names(rule["expr"])
        unknown = {n for n in names if not known(n)}
        assert not unknown, f"{rule['alert']}: {unknown}"
        used |= names
    # The alerts the README promises are there.
    for name in (
        "smslink_link_up",
        "smslink_link_ring_in_use",
        "smslink_smsc_up",
        "smslink_smsc_mt_rejected_total",
        "smslink_smsc_mt_temporary_failures_total",
        "smslink_smsc_mo_backpressured_total",
        "smslink_smsc_mo_deferred_total",
        "smslink_link_refused_connections_total",
        "smslink_link_ack_latency_seconds_bucket",
    ):
        assert name in used, name


def test_the_name_check_catches_a_typo() -> None:
    names = metric_names('sum by (link) (rate(smslink_smsc_mt_rejectd_total{link="au"}[5m]))')
    assert names == {"smslink_smsc_mt_rejectd_total"}
    assert not known("smslink_smsc_mt_rejectd_total")


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (apt-get install prometheus)"
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
