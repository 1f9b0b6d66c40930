"""Suite-wide set-up, before any test module is imported."""

from vec2face.utils.signals import restore_interrupt_signals

# Started in the background (`bash .ci/run &`), every pytest worker began with SIGINT
# ignored, and after its first Dagster run with SIGTERM ignored too: a multiprocessing Pool's
# terminate() then waited forever on its worker (the suite hung at test_forked_workers_reopen)
# and dagster dev started by a test shrugged off `kill -TERM`. The suite runs with the
# handlers an interactive shell gives it.
restore_interrupt_signals()
