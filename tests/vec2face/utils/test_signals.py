"""restore_interrupt_signals: a process started with SIGINT and SIGTERM ignored stops on
SIGTERM again, even after code that copies SIGINT's handler onto SIGTERM (as Dagster does)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from vec2face.utils.signals import restore_interrupt_signals

CHILD = """
import signal, sys, time
from vec2face.utils.signals import restore_interrupt_signals
if sys.argv[1] == "restore":
    print(",".join(restore_interrupt_signals()), flush=True)
else:
    print("-", flush=True)
# what Dagster does at every run
signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))
time.sleep(60)
"""


def _ignoring_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _start(mode: str) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignoring_interrupts,
    )
    first = child.stdout.readline().strip()
    time.sleep(0.2)  # past the handler swap
    return child, first


def test_restored_process_stops_on_sigterm_with_keyboard_interrupt():
    child, changed = _start("restore")
    assert changed == "SIGINT,SIGTERM"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=20)
    assert child.returncode != 0
    assert "KeyboardInterrupt" in err


def test_without_it_the_process_ignores_sigterm():
    child, _ = _start("keep")
    child.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=2)
    child.kill()
    child.wait(timeout=20)


def test_nothing_changes_where_nothing_is_ignored():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert restore_interrupt_signals() == []
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
