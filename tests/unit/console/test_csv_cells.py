"""The warnings export's cells: what a spreadsheet would run as a formula is quoted."""

from datetime import UTC, datetime

from app.console.routes import _cell


def test_values_a_spreadsheet_would_run_are_quoted() -> None:
    for text in ('=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert _cell(text) == "'" + text
    assert _cell("plain@example.org") == "plain@example.org"
    assert _cell(None) == ""
    assert _cell(3) == "3"
    assert _cell(datetime(2026, 1, 2, 3, 4, tzinfo=UTC)) == "2026-01-02T03:04:00+00:00"
