"""``docq bench`` runs and reports every figure (small sizes: timings are not asserted)."""

from __future__ import annotations

import json

import pytest
from conftest import run_docq
from jsonref import check

EXPECTED = (
    "bulk enqueue, hashing included",
    "docq, batch 1",
    "docq, batch 10",
    "docq, batch 100",
    "bare sqlite3, same SQL, batch 1",
    "docq / bare sqlite3, batch 1",
    "docq, batch 100, synchronous=normal",
    "docq, batch 100, synchronous=full",
    "get_queue_stats() with",
    "docq work (child processes, synchronous=full)",
    "pypdfium2 called directly, one process",
    "docq work --concurrency 1",
    "docq work --concurrency 2",
    "docq (concurrency 1, once running) / pypdfium2",
    "concurrency 2 / concurrency 1, once running",
    "docq --version",
    "docq stats above import sqlmodel",
    "idle docq work --loop, resident",
    "worker row kept live / not, batch 1",
    "first screen, 1,000 items",
    "next page of 200, 1,000 items",
)


@pytest.mark.slow
def test_quick_bench_reports_every_figure(tmp_path: object) -> None:
    result = run_docq("bench", "--quick", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    check("docq bench --json", report)
    names = [measure["name"] for measure in report["measures"]]
    for expected in EXPECTED:
        assert any(name.startswith(expected) for name in names), (expected, names)
    assert any(name.startswith("rate at") for name in names)
    for measure in report["measures"]:
        if measure["name"] == "huey SqliteHuey":
            continue  # reported only where huey is installed
        assert isinstance(measure["value"], int | float), measure
        if measure["unit"] != "ms" or "above" not in measure["name"]:  # a difference may be negative
            assert measure["value"] > 0, measure
        if measure["target"]:
            assert measure["ok"] in (True, False), measure
    assert report["machine"]["sqlite"] and report["machine"]["cpus"] >= 1


def test_bench_text_report_is_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    from docq.bench import Measure, Report
    from docq.render.admin import bench_report

    report = Report(machine={"python": "3.11", "sqlite": "3.40", "cpus": 2, "platform": "Linux"})
    report.add(Measure("claim+complete", "docq, batch 1", 2500.0, "items/s"))
    report.add(Measure("claim+complete", "docq / bare sqlite3, batch 1", 91.0, "%", ">= 50%", True))
    report.add(Measure("memory", "idle worker", 120.0, "MiB", "<= 100 MB", False))
    bench_report(report)
    out = capsys.readouterr().out
    assert "claim+complete" in out and "2,500 items/s" in out and "91.0%" in out
    assert "met" in out and "missed" in out


def test_the_web_bench_reports_uploads_beside_a_bare_endpoint() -> None:
    pytest.importorskip("fastapi", reason='the web extra is not installed: pip install "docq[web]"')
    result = run_docq("bench", "--web", "--quick", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    check("docq bench --json", report)
    values = {measure["name"]: measure["value"] for measure in report["measures"]}
    for name in ("docq serve", "bare FastAPI endpoint, file written only"):
        assert values[f"{name}: uploads/s"] > 0 and 0 < values[f"{name}: p50"] <= values[f"{name}: p99"]
    assert values["docq serve / bare endpoint"] > 0
