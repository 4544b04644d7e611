from __future__ import annotations

import logging

import orjson

from app.observability.logs import JsonFormatter


def test_json_log_line_has_message_and_extras() -> None:
    record = logging.LogRecord("app.sync", logging.INFO, __file__, 1, "run %s done", ("r1",), None)
    record.district_id = "d1"
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "run r1 done"
    assert line["level"] == "INFO"
    assert line["logger"] == "app.sync"
    assert line["district_id"] == "d1"
    assert "args" not in line
