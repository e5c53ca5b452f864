"""Anytime curves and the time to come within 1% of the final best (pure functions)."""

from __future__ import annotations

import pandas as pd

from hindsight_ray.reporting.report import anytime, seconds_to_within, summary_markdown


def trials(scores, seconds, finished):
    return pd.DataFrame({"val_rmse": scores, "total_s": seconds, "finished_at": finished})


def test_anytime_is_best_so_far_over_cumulative_trial_seconds():
    curve = anytime(trials([5.0, None, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [10, 11, 13, 12]), "val_rmse", "min")
    # ordered by finishing time: 5.0 (1 s), failed (2 s), 4.0 (4 s), 3.0 (3 s)
    assert curve.trial_s.tolist() == [1.0, 3.0, 7.0, 10.0]
    assert curve.best.tolist() == [5.0, 5.0, 4.0, 3.0]
    assert anytime(trials([0.7, 0.9], [1.0, 1.0], [1, 2]), "val_rmse", "max").best.tolist() == [0.7, 0.9]


def test_seconds_to_within_one_percent():
    curve = pd.DataFrame({"trial_s": [1.0, 3.0, 7.0, 10.0], "best": [5.0, 5.0, 3.02, 3.0]})
    assert seconds_to_within(curve, 3.0, "min") == 7.0  # 3.02 is within 1% of 3.0
    assert seconds_to_within(curve, 3.0, "min", tolerance=0.001) == 10.0
    assert seconds_to_within(curve, None, "min") is None


def test_markdown_table():
    text = summary_markdown(pd.DataFrame({"a": ["x"], "b": [1.23456]}))
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x | 1.235 |"]


def test_report_html_is_one_self_contained_page(tmp_path):
    import base64
    from html.parser import HTMLParser

    from hindsight_ray.core.experiment import ExperimentStore
    from hindsight_ray.reporting.report_html import markdown_to_html

    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    (tmp_path / "plot.png").write_bytes(png)
    markdown = "# Sweep x\n\nStrategy `two_stage` <on> data.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![plot](plot.png)\n"
    page = markdown_to_html(markdown, ExperimentStore(str(tmp_path)))

    class Seen(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[tuple[str, dict]] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))

    seen = Seen()
    seen.feed(page)
    tags = [t for t, _ in seen.tags]
    assert tags.count("table") == 1 and tags.count("td") == 2 and "h1" in tags and "code" in tags
    images = [a for t, a in seen.tags if t == "img"]
    assert images == [{"alt": "plot", "src": "data:image/png;base64," + base64.b64encode(png).decode()}]
    assert "http" not in page and "&lt;on&gt;" in page  # no network, text escaped


def test_consecutive_pictures_share_one_row_that_uses_the_width(tmp_path):
    import base64

    from hindsight_ray.core.experiment import ExperimentStore
    from hindsight_ray.reporting.report_html import markdown_to_html

    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(png)
    page = markdown_to_html("# x\n\n![a](a.png)\n![b](b.png)\n", ExperimentStore(str(tmp_path)))
    assert page.count('<div class="plots">') == 1 and page.count("<img") == 2
    assert "max-width:1800px" in page and "grid-template-columns" in page


def test_bold_text_and_wide_pictures_in_the_page(tmp_path):
    import struct

    from hindsight_ray.core.experiment import ExperimentStore
    from hindsight_ray.reporting.report_html import _wide, markdown_to_html

    def header(width: int, height: int) -> bytes:  # a PNG's signature and IHDR size, enough for _wide
        return b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + struct.pack(">II", width, height) + b"\0" * 20

    assert _wide(header(990, 180)) and not _wide(header(700, 400)) and not _wide(b"GIF89a")
    (tmp_path / "timeline.png").write_bytes(header(990, 180))
    (tmp_path / "grid.png").write_bytes(header(700, 400))
    page = markdown_to_html("**The chosen model is WORSE.**\n\n![t](timeline.png)\n![g](grid.png)\n",
                            ExperimentStore(str(tmp_path)))
    assert "<p><strong>The chosen model is WORSE.</strong></p>" in page and "**" not in page
    assert page.count('class="wide"') == 1 and '<img alt="t" class="wide"' in page


def test_timeline_rows_are_node_device_and_slot():
    from hindsight_ray.reporting.report import timeline_rows

    ran = pd.DataFrame({
        "node_ip": ["10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1"],
        "gpu_ids": ["", "", "", "", "0"],
        "started_at": [0.0, 1.0, 5.0, 0.0, 0.0],
        "finished_at": [4.0, 6.0, 8.0, 3.0, 2.0],
    })
    # the third trial starts after the first ended: it takes the first's slot, not a third one
    assert timeline_rows(ran) == ["10.0.0.1 CPU · slot 1", "10.0.0.1 CPU · slot 2", "10.0.0.1 CPU · slot 1",
                                  "10.0.0.2 CPU · slot 1", "10.0.0.1 GPU 0 · slot 1"]


def test_axis_labels_carry_units():
    from hindsight_ray.reporting.report import metric_label

    summary = {"data": {"targets": ["passengers"]}}
    assert metric_label("val_rmse", summary) == "validation RMSE (passengers)"
    assert metric_label("test_mae", summary) == "test MAE (passengers)"
    assert metric_label("val_accuracy", None) == "validation accuracy (fraction correct)"


def test_text_reports_get_per_class_scores(tmp_path):
    from hindsight_ray.core.experiment import ExperimentStore
    from hindsight_ray.reporting.report import confusion_lines

    frame = pd.DataFrame({"actual": ["neg", "neg", "pos", "pos", "pos"], "predicted": ["neg", "pos", "pos", "pos", "neg"]})
    frame.to_parquet(tmp_path / "test_predictions.parquet")
    lines = confusion_lines(ExperimentStore(str(tmp_path)), {"metric": "val_accuracy"})
    assert "| neg | 0.500 | 0.500 | 0.500 | 2 |" in lines  # 1 of 2 predicted neg right, 1 of 2 neg found
    assert "| pos | 0.667 | 0.667 | 0.667 | 3 |" in lines
