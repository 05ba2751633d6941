"""eval/soak.py's bookkeeping on made-up runs: the RSS slope, failures and differences placed right."""

from __future__ import annotations

import argparse

import pytest

from eval.soak import Request, Soak, markdown, report, slope_per_hour


def test_the_slope_is_per_hour_and_flat_for_flat_samples() -> None:
    rising = [{"t": t, "rss_mb": 800 + t / 60} for t in range(0, 1800, 30)]  # 1 MB a minute
    assert slope_per_hour(rising, "rss_mb") == pytest.approx(60)
    assert slope_per_hour([{"t": t, "rss_mb": 800.0} for t in range(0, 600, 30)], "rss_mb") == 0


def made_up_run() -> tuple[Soak, dict[str, str]]:
    args = argparse.Namespace(seed=1, minutes=1.0, model="qwen-1.5b")
    soak = Soak("http://x/", None, ["q1", "q2"], args)  # type: ignore[arg-type]
    idle = {"v1\tq1": "A [1].", "v1\tq2": "B [2].", "mcp\tq1": "A [1]."}
    soak.requests = [
        Request(0, "v1", "q1", start=10, end=15, text="A [1]."),
        Request(1, "v1", "q2", start=12, end=20, error="APIError: the model process stopped", kills=["in flight"]),
        Request(2, "mcp", "q1", start=30, end=33, text="A, said differently [1]."),  # a real difference
        Request(3, "v1", "q2", start=50, end=55, text="B, with the upload [2]."),  # while the upload was indexed
        Request(0, "v1", "q1", start=70, end=72, error="RuntimeError: boom"),  # a failure outside any kill
    ]
    soak.upload_window = (45.0, 60.0)
    soak.kills = [{"t": 14, "mode": "in flight", "busy": True, "pid": 1}]
    soak.samples = [{"t": t, "rss_mb": 800.0, "threads": 12, "fds": 14} for t in (0, 30, 60, 90)]
    return soak, idle


def test_the_report_separates_failures_at_a_kill_and_differences_with_the_upload_indexed() -> None:
    soak, idle = made_up_run()
    result = report(soak, idle, warmup_s=0, log_lines=["model process 9 ready in 0.6 s"], args=soak.args)
    assert (result["asked"], result["answered"], result["failed"], result["failed_outside_a_kill"]) == (5, 3, 2, 1)
    assert result["differ_from_idle"] == 1 and result["asked_with_upload_indexed"] == 1
    assert result["differ_with_upload_indexed"] == 1
    assert result["kills"] == {"idle": 0, "in flight": 1, "idle with a question queued": 0}
    assert result["rss_mb"]["slope_per_hour_after_warmup"] == 0
    text = markdown(result)
    assert "| 5 | 3 | 2 | 1 | 1 | 0 / 1 |" in text and "mcp: q1" in text and "v1 (upload indexed): q2" in text
