"""Suite-wide set-up, before any test module is imported."""

from __future__ import annotations

import signal

# A non-interactive shell starts a background command (`bash .ci/run &`, nohup, cron) with
# SIGINT ignored, and Dagster gives SIGTERM whatever handler SIGINT has whenever it runs a job
# (dagster._utils.interrupts.setup_interrupt_handlers). In a pytest worker started so, every
# process forked or spawned after the first Dagster run then ignored SIGTERM: a
# multiprocessing Pool's terminate() waited forever on its worker (the suite hung at
# test_forked_workers_reopen), and dagster dev started by a test shrugged off `kill -TERM`.
# The suite runs with the handlers an interactive shell would give it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
