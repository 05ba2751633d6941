"""eval/soak.py's bookkeeping on made-up runs: the RSS slope, failures and differences placed right."""

from __future__ import annotations

import argparse

import pytest

from eval.soak import Request, Soak, markdown, report, slope_per_hour


def test_the_slope_is_per_hour_and_flat_for_flat_samples() -> None:
    rising = [{"t": t, "rss_mb": 800 + t / 60} for t in range(0, 1800, 30)]  # 1 MB a minute
    assert slope_per_hour(rising, "rss_mb") == pytest.approx(60)
    assert slope_per_hour([{"t": t, "rss_mb": 800.0} for t in range(0, 600, 30)], "rss_mb") == 0


def made_up_run() -> tuple[Soak, dict[str, str], dict[str, str]]:
    args = argparse.Namespace(seed=1, minutes=1.0, model="qwen-1.5b")
    soak = Soak("http://x/", None, ["q1", "q2"], args)  # type: ignore[arg-type]
    idle = {"v1\tq1": "A [1].", "v1\tq2": "B [2].", "mcp\tq1": "A [1]."}
    with_upload = {"v1\tq1": "A [1].", "v1\tq2": "B, with the upload [2].", "mcp\tq1": "A [1]."}
    soak.requests = [
        Request(0, "v1", "q1", start=10, end=15, text="A [1]."),
        Request(1, "v1", "q2", start=12, end=20, error="APIError: the model process stopped", kills=["in flight"]),
        Request(2, "mcp", "q1", start=30, end=33, text="A, said differently [1]."),  # a real difference
        Request(3, "v1", "q2", start=50, end=55, text="B, with the upload [2]."),  # the upload's own idle answer
        Request(1, "v1", "q2", start=52, end=54, text="B [2]."),  # the seeds' answer while the upload was indexed
        Request(2, "v1", "q2", start=59, end=63, text="B [2]."),  # while the removal was under way: either
        Request(0, "v1", "q1", start=70, end=72, error="RuntimeError: boom"),  # a failure outside any kill
    ]
    soak.moments = [44.0, 46.0, 58.0, 60.0]
    soak.kills = [{"t": 14, "mode": "in flight", "busy": True, "pid": 1}]
    soak.samples = [{"t": t, "rss_mb": 800.0, "threads": 12, "fds": 14} for t in (0, 30, 60, 90)]
    return soak, idle, with_upload


def test_the_report_separates_failures_at_a_kill_and_compares_answers_over_the_same_documents() -> None:
    soak, idle, with_upload = made_up_run()
    result = report(soak, idle, with_upload, warmup_s=0, log_lines=["model process 9 ready in 0.6 s"], args=soak.args)
    assert (result["asked"], result["answered"], result["failed"], result["failed_outside_a_kill"]) == (7, 5, 2, 1)
    assert result["differ_from_idle"] == 2 and result["asked_with_upload_indexed"] == 3
    assert result["differ_with_upload_indexed"] == 1 and result["idle_answers_changed_by_upload"] == 1
    assert result["kills"] == {"idle": 0, "in flight": 1, "idle with a question queued": 0}
    assert result["rss_mb"]["slope_per_hour_after_warmup"] == 0
    text = markdown(result)
    assert "| 7 | 5 | 2 | 1 | 2 | 0 / 1 |" in text and "mcp: q1" in text and "v1 (upload indexed): q2" in text
