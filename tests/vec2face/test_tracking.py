"""The library's tracking interface: protocol, the silent default, the console tracker."""

from __future__ import annotations

import io
import json

from vec2face.tracking import ConsoleTracker, NullTracker, Tracker, flatten


def test_both_trackers_satisfy_the_protocol():
    assert isinstance(NullTracker(), Tracker) and isinstance(ConsoleTracker(), Tracker)
    assert not isinstance(object(), Tracker)


def test_flatten_dots_nested_keys_and_keeps_sequences():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}


def test_console_tracker_writes_one_json_line_per_call(tmp_path):
    stream = io.StringIO()
    tracker = ConsoleTracker(stream)
    tracker.log_params({"fit": {"lr": 0.1}})
    tracker.log_metrics({"loss": 1}, step=3)
    tracker.log_artifact(tmp_path / "grid.png")
    tracker.set_tags({"run": 5})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines == [
        {"tracker": "params", "values": {"fit.lr": 0.1}},
        {"tracker": "metrics", "step": 3, "values": {"loss": 1.0}},
        {"tracker": "artifact", "values": str(tmp_path / "grid.png")},
        {"tracker": "tags", "values": {"run": "5"}},
    ]


def test_null_tracker_accepts_everything_and_records_nothing(capsys):
    tracker = NullTracker()
    tracker.log_params({"a": 1})
    tracker.log_metrics({"b": 2.0}, step=1)
    tracker.log_artifact("x")
    tracker.set_tags({"c": "d"})
    assert capsys.readouterr() == ("", "")
