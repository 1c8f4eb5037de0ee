"""Pages watching one run, as the dashboard's page makes its requests (for benchmarks/dashboard.py).

    python benchmarks/dashboard_clients.py BASE_URL RUN_ID CELLS [--overviews N]

One client per cell, each doing what a browser's cell page does (``static/dashboard.js``,
``cellPage``): the series, the run's overview, the cycles, the spectra, the cell's results and
journal; then the run's event stream (server-sent events), and on every change the cell's
journal since the last event seen, the series again when the cell's last values moved, the
cycles and spectra when its step, cycle or state changed. ``--overviews`` pages show the
overview of every run (its stream; nothing more is asked on a change without a pending
control). Runs until SIGTERM or SIGINT; then prints one JSON line: requests made per kind,
changes received, the series' response times, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import time
from collections import Counter
from urllib.parse import quote

import httpx2 as httpx

WIDTH = 1370   # the plots' width on a 1400 px window


class Tally:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.changes = 0
        self.series_s: list[float] = []


async def get(client: httpx.AsyncClient, tally: Tally, kind: str, url: str,
              parse: bool = True) -> dict | None:
    """The answer, parsed (``parse`` False: read, not parsed: the page would plot it, and
    browsers watching from elsewhere parse it on their own machines)."""
    began = time.perf_counter()
    try:
        r = await client.get(url)
    except httpx.HTTPError as exc:
        tally.errors[f"{kind}: {type(exc).__name__}"] += 1
        return None
    tally.requests[kind] += 1
    if kind == "series":
        tally.series_s.append(time.perf_counter() - began)
    if r.status_code != 200:
        tally.errors[f"{kind}: {r.status_code}"] += 1
        return None
    return r.json() if parse else {}


async def changes(client: httpx.AsyncClient, url: str):
    """The stream's change events, parsed."""
    async with client.stream("GET", url) as r:
        data = None
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                data = line[6:]
            elif line == "" and data is not None:
                yield json.loads(data)
                data = None


async def cell_page(client: httpx.AsyncClient, tally: Tally, run: str, cell: str) -> None:
    api = f"/api/runs/{quote(run)}"
    mine = f"{api}/cells/{quote(cell)}"
    while True:   # a page opened as the run starts: until the run is served
        s = await get(client, tally, "series", f"{mine}/series?width={WIDTH}")
        if s is not None:
            break
        await asyncio.sleep(0.5)
    while not s["complete"]:
        await asyncio.sleep(0.05)
        s = await get(client, tally, "series", f"{mine}/series?width={WIDTH}") or s
    ov = await get(client, tally, "overview", api) or {"cells": []}
    row = next((c for c in ov["cells"] if c["cell"] == cell), {})
    await get(client, tally, "cycles", f"{mine}/cycles")
    await get(client, tally, "spectra", f"{mine}/spectra?last=3")
    await get(client, tally, "results", f"{api}/results?cell={quote(cell)}")
    got = await get(client, tally, "events", f"{api}/events?after=-1&limit=300"
                                              f"&cell={quote(cell)}")
    after = got["events"][-1]["id"] if got and got["events"] else -1
    async for change in changes(client, f"/api/stream?run={quote(run)}"):
        tally.changes += 1
        new = change.get(run)
        if not new or "error" in new:
            continue
        now = next((c for c in new["cells"] if c["cell"] == cell), row)
        jobs = [get(client, tally, "events", f"{api}/events?after={after}&limit=300"
                                             f"&cell={quote(cell)}")]
        if now.get("t_s") != row.get("t_s"):
            jobs.append(get(client, tally, "series", f"{mine}/series?width={WIDTH}",
                            parse=False))
        if any(now.get(k) != row.get(k) for k in ("step", "cycle", "state")):
            jobs += [get(client, tally, "cycles", f"{mine}/cycles"),
                     get(client, tally, "spectra", f"{mine}/spectra?last=3")]
        row = now
        got = (await asyncio.gather(*jobs))[0]
        if got and got["events"]:
            after = got["events"][-1]["id"]


async def overview_page(client: httpx.AsyncClient, tally: Tally) -> None:
    listed = await get(client, tally, "runs", "/api/runs") or {"runs": []}
    for r in listed["runs"]:
        await get(client, tally, "overview", f"/api/runs/{quote(r['id'])}")
    async for _ in changes(client, "/api/stream"):
        tally.changes += 1


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("run")
    parser.add_argument("cells", nargs="+")
    parser.add_argument("--overviews", type=int, default=1)
    args = parser.parse_args()
    tally = Tally()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    limits = httpx.Limits(max_connections=4 * len(args.cells) + 10)
    async with httpx.AsyncClient(base_url=args.base, timeout=httpx.Timeout(120.0),
                                 limits=limits) as client:
        pages = [asyncio.create_task(cell_page(client, tally, args.run, c))
                 for c in args.cells]
        pages += [asyncio.create_task(overview_page(client, tally))
                  for _ in range(args.overviews)]
        await stop.wait()
        for p in pages:
            if p.done() and p.exception() is not None:
                tally.errors[f"page: {p.exception()!r}"[:120]] += 1
            p.cancel()
        await asyncio.gather(*pages, return_exceptions=True)
    took = tally.series_s
    print(json.dumps({"requests": dict(tally.requests), "changes": tally.changes,
                      "errors": dict(tally.errors),
                      "series_median_s": statistics.median(took) if took else None,
                      "series_worst_s": max(took) if took else None}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
