"""The pure parts of the reports: CSV that Excel reads as UTF-8, and the grouping of unanswered questions."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

from app.services.reports.export import BOM, Section, to_csv
from app.services.reports.unanswered import merge_similar, similarity

AT = datetime(2024, 5, 1, tzinfo=timezone.utc)


def test_csv_starts_with_a_bom_and_chinese_round_trips():
    text = to_csv(title="业务量", scope_line="2024-05-01 至 2024-05-03，幸福社区",
                  sections=[Section("每日工单", ["日期", "类别", "工单数"], [["2024-05-01", "机器人未能理解", 3]])])
    raw = text.encode("utf-8")
    assert raw.startswith(b"\xef\xbb\xbf")
    # What Excel does: read as utf-8-sig, then parse CSV.
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["业务量", "2024-05-01 至 2024-05-03，幸福社区"]
    assert ["2024-05-01", "机器人未能理解", "3"] in rows
    assert text.count(BOM) == 1 and "\r\n" in text


def test_csv_defuses_cells_excel_would_run_as_formulas():
    text = to_csv(title="机器人", scope_line="", sections=[
        Section("未能回答的问题", ["问题", "次数"], [["=HYPERLINK(\"http://x\")", 1], ["-1+2", 1], ["正常问题", 1]])])
    rows = list(csv.reader(io.StringIO(text.removeprefix(BOM))))
    assert ["'=HYPERLINK(\"http://x\")", "1"] in rows and ["'-1+2", "1"] in rows and ["正常问题", "1"] in rows


def test_csv_writes_empty_cells_for_missing_figures():
    text = to_csv(title="t", scope_line="", sections=[Section("s", ["a", "b"], [[None, 0]])])
    assert ",0\r\n" in text


def test_similar_questions_are_merged_into_the_largest_group():
    groups = [{"key": "社保卡怎么补办", "count": 4, "example": "社保卡怎么补办？", "last_at": AT},
              {"key": "停车位怎么申请", "count": 2, "example": "停车位怎么申请", "last_at": AT},
              {"key": "社保卡丢了怎么补办", "count": 3, "example": "社保卡丢了怎么补办", "last_at": AT}]
    merged = merge_similar(groups)
    assert [(c["question"], c["count"]) for c in merged] == [("社保卡怎么补办？", 7), ("停车位怎么申请", 2)]
    assert merged[0]["examples"] == ["社保卡怎么补办？", "社保卡丢了怎么补办"]


def test_similarity_of_unrelated_questions_is_low_and_of_a_single_character_defined():
    assert similarity("社保卡怎么补办", "停车位怎么申请") < 0.2
    assert similarity("好", "好") == 1.0 and similarity("好", "坏") == 0.0
