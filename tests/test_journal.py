"""run.log's lines: their UTC stamps are what datetime writes, however the seconds fall."""

from __future__ import annotations

import datetime as dt

from sequencer.journal import Journal


class _Clock:
    origin_utc = 0.0

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def utc(self, t: float) -> float:
        return self.origin_utc + t


class _Store:
    durable = False


def test_each_line_is_stamped_as_datetime_stamps_it(tmp_path):
    clock = _Clock()
    journal = Journal(_Store(), tmp_path, clock)   # type: ignore[arg-type]
    moments = [0.0, 0.5, 59.9999994, 59.9999996, 86399.9999996, 86400.0, 1.7e9 + 3723.25,
               1.7e9 + 3723.9999999, 1.7e9 + 86400 * 400 + 0.1, 4102444799.5, 4102444800.0]
    for t in moments:
        clock.t = t
        journal.log(None, "tick", "x")
    journal.close()
    stamps = [line.split(" ")[0] for line in (tmp_path / "run.log").read_text().splitlines()]
    assert stamps == [dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")
                      for t in moments]
    assert stamps[3] == "1970-01-01T00:01:00+00:00"   # rounded up to the next second
