"""The console's heartbeat: elapsed, trials per stage, best so far, time left; tested on stand-in trials."""

from __future__ import annotations

import io

from hindsight_ray.core.objective import Objective
from hindsight_ray.reporting.progress import Heartbeat, LiveLine, StageLines, clock, say
from tests.fakes import FakeTrial


def test_the_heartbeat_counts_stages_names_running_epochs_and_estimates_time_left():
    progress = Heartbeat(Objective("val_rmse", "min"), stage_epochs={1: (4, 10), 2: (3, 20)}, slots=2)
    timing = {"epoch_s": 0.4, "checkpoint_s": 1.0, "data_s": 0.5, "build_s": 2.5}  # 0.5 s an epoch, 3 s to start
    trials = [
        FakeTrial("TERMINATED", {"stage": 1, "layers": 1, "units": 8, "epochs": 10},
                  {"epoch": 10, "score": 30.0, **timing}),
        FakeTrial("TERMINATED", {"stage": 1, "layers": 1, "units": 16, "epochs": 10},
                  {"epoch": 10, "score": 25.5, **timing}),
        FakeTrial("RUNNING", {"stage": 1, "layers": 2, "units": 8, "epochs": 10},
                  {"epoch": 4, "score": 40.0, **timing, "epoch_s": 0.3, "checkpoint_s": 0.8}),
        FakeTrial("PENDING", {"stage": 1, "layers": 2, "units": 16, "epochs": 10}),
    ]
    line = progress.line(trials, elapsed=12.4)
    assert line.startswith("[0:12] stage 1: 2/4 done, 1 running (2x8 4/10), 1 queued")
    assert "best val_rmse 25.5" in line
    # the median epoch takes 0.4 + 1.0/10 s, a start 3 s. Stage 1: 40 - 24 epochs and one trial to start over
    # 2 slots; stage 2: 60 epochs and 3 starts one at a time
    assert line.endswith(f"left ~{clock((16 * 0.5 + 3) / 2 + 60 * 0.5 + 3 * 3)}")
    assert progress.line(trials[3:], elapsed=1).endswith("left ~?")  # nothing measured yet
    started = FakeTrial("RUNNING", {"stage": 1, "layers": 2, "units": 16, "epochs": 10})
    assert "1 running (2x16 starting)" in progress.line([started], elapsed=1)  # no epoch has ended yet


def test_plain_lines_come_at_most_every_interval():
    lines: list[str] = []
    output = LiveLine(lines.append, live=False, every=10)
    assert not output.due(100.0)  # the first call starts the clock
    assert not output.due(109.0)
    assert output.due(110.0)
    output.show("[0:10] stage 1: 0/4 done", 110.0)
    assert lines == ["[0:10] stage 1: 0/4 done"] and not output.due(115.0) and output.due(120.5)


def test_on_a_terminal_the_heartbeat_is_one_line_redrawn_in_place():
    from rich.console import Console

    screen = io.StringIO()
    output = LiveLine(print, live=True, redraw=1.0, console=Console(file=screen, force_terminal=True, width=100))
    output.due(0.0)
    assert output.due(1.0)
    output.show("[0:01] stage 1: 0/4 done, 2 running", 1.0)
    output.show("[0:02] stage 1: 1/4 done, 2 running", 2.0)
    output.close()
    drawn = screen.getvalue()
    assert "[0:01] stage 1: 0/4 done" in drawn and "[0:02] stage 1: 1/4 done" in drawn
    assert "\x1b[" in drawn  # cursor control from rich, not text lines appended one after another
    assert drawn.count("\n") < 4
    narrow = io.StringIO()
    output = LiveLine(print, live=True, console=Console(file=narrow, force_terminal=True, width=30))
    output.show("[0:03] stage 1: 0/4 done, 2 running (1x4 1/10, 1x8 1/10)", 3.0)
    output.close()
    assert "done, 2 r…" in narrow.getvalue() and "1x8" not in narrow.getvalue()  # cut, never wrapped


def test_live_output_is_dropped_when_pickled_with_the_experiment():
    import pickle

    output = LiveLine(print, live=None)
    output.last = 5.0
    restored = pickle.loads(pickle.dumps(output))
    assert restored.last is None and restored.mode is None and restored.echo is say  # print, when it prints


def test_stage_lines_follow_the_sequential_rule_and_name_speculation():
    lines = StageLines(Objective("val_rmse", "min"), stage1_trials=2, stage2_trials=3, max_learning_rate=0.02)
    one = FakeTrial("TERMINATED", {"stage": 1, "layers": 1, "units": 8, "epochs": 4}, {"epoch": 4, "score": 30.0})
    two = FakeTrial("ERROR", {"stage": 1, "layers": 2, "units": 8, "epochs": 4}, {"epoch": 2, "score": 20.0})
    assert lines.ended([one], one) == ["stage 1: 1/2 done, best units=8 layers=1 val_rmse=30"]
    assert lines.ended([one, two], two) == ["stage 1: 2/2 done (1 failed), best units=8 layers=1 val_rmse=30"]
    first = FakeTrial("TERMINATED", {"stage": 2, "learning_rate": 0.02, "epochs": 4},
                      {"epoch": 4, "score": 25.0, "started_at": 1.0})
    assert lines.ended([one, first], first) == ["stage 2: iteration 1/3 lr=0.02 val_rmse=25 (improved)"]
    off_path = FakeTrial("TERMINATED", {"stage": 2, "learning_rate": 0.005, "epochs": 4},
                         {"epoch": 1, "score": 40.0, "started_at": 2.0})
    assert lines.ended([one, first, off_path], off_path)[0].startswith("stage 2: speculative lr=0.005 ended")
    # 0.01 (the rule's next) ended before 0.02: nothing decided then; 0.02's end decides both
    lines = StageLines(Objective("val_rmse", "min"), stage1_trials=2, stage2_trials=3, max_learning_rate=0.02)
    second = FakeTrial("TERMINATED", {"stage": 2, "learning_rate": 0.01, "epochs": 4},
                       {"epoch": 4, "score": 20.0, "started_at": 2.0})
    first = FakeTrial("TERMINATED", {"stage": 2, "learning_rate": 0.02, "epochs": 4},
                      {"epoch": 4, "score": 25.0, "started_at": 1.0})
    assert lines.ended([one, second], second) == ["stage 2: speculative lr=0.01 ended; path decided so far 0/3"]
    assert lines.ended([one, second, first], first) == ["stage 2: iteration 1/3 lr=0.02 val_rmse=25 (improved)",
                                                        "stage 2: iteration 2/3 lr=0.01 val_rmse=20 (improved)"]


def test_a_console_printing_with_print_pickles_after_ray_replaced_print(monkeypatch):
    """Ray's driver replaces ``builtins.print`` once it shows a worker's output (tqdm_ray); a sweep started
    later in that process (a notebook's) still pickles its console with Tune, and prints through the print
    in place when it prints."""
    import builtins
    import pickle

    original, shown = builtins.print, []
    monkeypatch.setattr(builtins, "print", lambda *args, **kwargs: shown.append(args))
    line = pickle.loads(pickle.dumps(LiveLine(original, live=False)))
    line.echo("heartbeat")
    assert shown == [("heartbeat",)]
