from datetime import UTC, datetime, timedelta

from app.console.format import Series, ago, bar_chart, duration, freshness

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_ago_counts_in_the_largest_whole_unit() -> None:
    assert ago(None, NOW) == "never"
    assert ago(NOW - timedelta(seconds=42), NOW) == "42 s ago"
    assert ago(NOW - timedelta(minutes=59, seconds=59), NOW) == "59 min ago"
    assert ago(NOW - timedelta(hours=5), NOW) == "5 h ago"
    assert ago(NOW - timedelta(days=3, hours=23), NOW) == "3 d ago"
    assert ago(NOW + timedelta(seconds=5), NOW) == "0 s ago"


def test_duration_reads_at_every_scale() -> None:
    assert duration(NOW, None) == "" and duration(None, NOW) == ""
    assert duration(NOW, NOW + timedelta(milliseconds=850)) == "850 ms"
    assert duration(NOW, NOW + timedelta(seconds=12.44)) == "12.4 s"
    assert duration(NOW, NOW + timedelta(seconds=185)) == "3 min 5 s"


def test_freshness_against_the_stale_hours() -> None:
    assert freshness(None, NOW, 24) == "never"
    assert freshness(NOW - timedelta(hours=24), NOW, 24) == "fresh"
    assert freshness(NOW - timedelta(hours=24, seconds=1), NOW, 24) == "stale"


def test_a_bar_chart_scales_to_its_largest_value_and_escapes_labels() -> None:
    svg = bar_chart(Series("Warnings", [0, 5, 10]), ["a", "b<c", "d"], height=114)
    assert svg.count("<rect") == 3
    assert 'height="100.0"' in svg and 'height="50.0"' in svg and 'height="0.0"' in svg
    assert "b&lt;c: 5" in svg and "<c" not in svg
    assert 'role="img"' in svg and 'aria-label="Warnings, 3 runs, largest 10"' in svg
    assert bar_chart(Series("Empty", []), []).count("<rect") == 0
