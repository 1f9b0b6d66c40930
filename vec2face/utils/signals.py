"""Signal dispositions of long-running entry points (the main job, the test suite).

A non-interactive shell starts a background command (``cmd &`` in a script, ``nohup``,
cron) with SIGINT ignored. Dagster, whenever it runs a job, gives SIGTERM the handler SIGINT
has (``dagster._utils.interrupts.setup_interrupt_handlers``: Kubernetes stops pods with
SIGTERM). In a process started so, the first Dagster run therefore made SIGTERM ignored as
well: ``kill PID`` no longer stopped the main job, and the processes it forked afterwards
(multiprocessing pools) ignored SIGTERM too, so a pool's ``terminate()`` could wait forever.
"""

from __future__ import annotations

import signal

__all__ = ["restore_interrupt_signals"]


def restore_interrupt_signals() -> list[str]:
    """Give an ignored SIGINT Python's default handler (KeyboardInterrupt) and an ignored
    SIGTERM its default action, as an interactive shell starts a process. Call it in the main
    thread before the first Dagster run. Returns the names of the signals it changed."""
    changed = []
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        changed.append("SIGINT")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        changed.append("SIGTERM")
    return changed
