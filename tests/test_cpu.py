"""The thread rule for a shared machine: cores other processes keep busy, and the threads left."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.core import cpu


def test_threads_left_by_other_processes() -> None:
    assert cpu.free_threads(2, 0.0, cores=2) == 2
    assert cpu.free_threads(2, 0.4, cores=2) == 2  # a little background work: keep both
    assert cpu.free_threads(2, 1.0, cores=2) == 1  # one busy process: one thread
    assert cpu.free_threads(2, 3.5, cores=2) == 1  # never fewer than one
    assert cpu.free_threads(4, 1.0, cores=8) == 4  # never more than asked for
    assert cpu.free_threads(2, None, cores=2) == 2  # not measurable: as asked


class Clock:
    def __init__(self) -> None:
        self.now, self.own = 100.0, 1.0

    def monotonic(self) -> float:
        return self.now

    def times(self) -> SimpleNamespace:
        return SimpleNamespace(user=self.own, system=0.0)


def write_stat(path: Path, busy_ticks: int, idle_ticks: int) -> None:
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    path.write_text(f"cpu  {busy_ticks} 0 0 {idle_ticks} 0 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Clock:
    clock = Clock()
    monkeypatch.setattr(cpu, "_STAT", tmp_path / "stat")
    monkeypatch.setattr(cpu.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(cpu.time, "sleep", lambda s: setattr(clock, "now", clock.now + s))
    monkeypatch.setattr(cpu.os, "times", clock.times)
    monkeypatch.setattr(cpu.os, "sysconf", lambda name: 100)  # 100 ticks a second
    return clock


def test_the_meter_counts_other_processes_not_this_one(clock: Clock, tmp_path: Path) -> None:
    write_stat(tmp_path / "stat", busy_ticks=1000, idle_ticks=5000)
    meter = cpu.CpuMeter()
    # 4 s later: the machine was busy 6 core-seconds, 2 of them this process's own
    clock.now += 4.0
    clock.own += 2.0
    write_stat(tmp_path / "stat", busy_ticks=1600, idle_ticks=5200)
    assert meter.others() == pytest.approx(1.0)
    # 2 s more with only this process working: nobody else
    clock.now += 2.0
    clock.own += 1.5
    write_stat(tmp_path / "stat", busy_ticks=1750, idle_ticks=5250)
    assert meter.others() == pytest.approx(0.0)


def test_a_stale_reading_is_replaced_by_a_fresh_sample(clock: Clock, tmp_path: Path) -> None:
    write_stat(tmp_path / "stat", busy_ticks=1000, idle_ticks=5000)
    meter = cpu.CpuMeter()
    clock.now += 60.0  # an hour of idle chat window would say nothing about now
    write_stat(tmp_path / "stat", busy_ticks=90000, idle_ticks=5000)
    started = clock.now
    assert meter.others() == pytest.approx(0.0)  # the sample saw no change in its 0.1 s
    assert clock.now - started == pytest.approx(cpu.FRESH_S)


def test_without_proc_stat_nothing_is_measured(clock: Clock) -> None:
    meter = cpu.CpuMeter()  # tmp_path/stat does not exist
    assert meter.others() is None


def test_a_server_keeps_glibc_to_two_malloc_arenas() -> None:
    import platform

    from rag.core.cpu import limit_malloc_arenas

    # glibc (Linux, which the project runs on) takes the setting; elsewhere the call says it could not
    expected = platform.libc_ver()[0] == "glibc"
    assert limit_malloc_arenas() is expected
