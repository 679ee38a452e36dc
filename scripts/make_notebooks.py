#!/usr/bin/env python
"""Build the teaching notebooks in notebooks/ from the sources in this file,
then execute them (nbclient, widget state stored) so that the committed copies
show their outputs (graph, tables, widgets' static fallbacks) on GitHub.

    python scripts/make_notebooks.py              # write and execute all six
    python scripts/make_notebooks.py 03 05        # only these
    python scripts/make_notebooks.py --no-execute # write the sources only
    python scripts/make_notebooks.py --check      # exit 1 if a notebook's cells differ from here

Review and edit the notebooks here, not in Jupyter: this file is their source.
notebooks/demo.ipynb is not built here.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str):
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str, tags: tuple[str, ...] = ()):
    cell = nbformat.v4.new_code_cell(textwrap.dedent(text).strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# ---------------------------------------------------------------------------
# 1. Getting started
# ---------------------------------------------------------------------------
NB1 = [
    md("""
    # 1 · Getting started: a notebook as a plan of steps

    Most notebook work is a chain: get some data, clean it, summarise it. Run the cells out of
    order, restart the kernel halfway, or change one cell, and it gets hard to say what is up to date.

    **nbsteps** makes the chain explicit. A cell that begins with `%%step NAME` is a **step**:

    * the names the cell assigns (`df = ...`, `def f(...)`, `import x`) are its **outputs**;
    * a name it reads that another step assigns is an **input**, and makes it **depend** on that
      step. nbsteps finds these by reading the code: you do not list them;
    * when it completes, nbsteps keeps a **checkpoint** of its outputs, so it does not run again
      unless its code, its inputs or an outside value it reads changes.

    This notebook builds a three-step chain over a week of (generated) weather-station readings,
    then looks at the dependency graph and the results table.
    """),
    code("%load_ext nbsteps"),
    md("""
    Ordinary cells stay ordinary. Imports and parameters live here, and steps may read them.
    """),
    code("""
    import numpy as np
    import pandas as pd

    STATIONS = ["harbour", "airport", "old-town"]
    DAYS = 7
    FROST_C = 0.0   # a reading below this temperature counts as a frost hour
    """),
    md("""
    ## Step 1: collect the readings

    Running a `%%step` cell registers the step and runs it at once. The line under the cell says
    what happened and which names the step published; the cell's last expression is the step's
    **result**, shown like any other `Out[...]`.
    """),
    code("""
    %%step collect
    rng = np.random.default_rng(7)
    hours = pd.date_range("2024-01-08", periods=24 * DAYS, freq="h")
    raw = pd.DataFrame({
        "time": np.tile(hours, len(STATIONS)),
        "station": np.repeat(STATIONS, len(hours)),
    })
    hour_of_day = raw.time.dt.hour.to_numpy()
    offset = raw.station.map({"harbour": 1.5, "airport": -1.0, "old-town": 0.5}).to_numpy()
    raw["temp_c"] = np.round(
        2 + offset + 4 * np.sin((hour_of_day - 9) / 24 * 2 * np.pi) + rng.normal(0, 1.5, len(raw)), 1
    )
    raw.loc[rng.choice(len(raw), 25, replace=False), "temp_c"] = np.nan   # sensor dropouts
    raw.head()
    """),
    md("""
    ## Step 2: clean

    `clean` reads `raw`, which `collect` wrote, so `clean` depends on `collect`. Nobody had to say so.
    """),
    code("""
    %%step clean
    temps = raw.dropna(subset=["temp_c"])
    f"kept {len(temps)} of {len(raw)} readings ({len(raw) - len(temps)} had no temperature)"
    """),
    md("""
    ## Step 3: a daily summary per station

    `summary` reads `temps` (from `clean`) and the parameter `FROST_C` (from an ordinary cell).
    """),
    code("""
    %%step summary
    daily = (
        temps.assign(day=temps.time.dt.date, frost=temps.temp_c < FROST_C)
        .groupby(["station", "day"])
        .agg(low=("temp_c", "min"), high=("temp_c", "max"), frost_hours=("frost", "sum"))
    )
    daily.frost_hours.unstack("station")
    """),
    md("""
    ## Run the plan: nothing left to do

    `%steps run` runs every step that is not up to date, in dependency order. All three are up to
    date, so each is *restored from its checkpoint* instead of executed.
    """),
    code("%steps run"),
    md("""
    ## Change a parameter and see exactly what goes stale

    A step's checkpoint is tied to a fingerprint of its code, its upstream steps and the outside
    values it reads. `summary` reads `FROST_C`; the other two steps do not. `%steps plan` shows what
    a run *would* do, and why, without running anything.
    """),
    code("""
    FROST_C = 1.0   # count the hours below 1 °C instead
    """),
    code("%steps plan"),
    code("%steps run"),
    md("""
    Only `summary` ran; `collect` and `clean` came from their checkpoints.

    ## The graph

    One node per step, coloured by status; an arrow means "needs the output of". The thick path is
    the **critical path**: the chain of steps that decides how long a full run takes.
    """),
    code("%steps graph"),
    md("""
    ## The results table

    One row per step: status, whether it came from a checkpoint, attempts, timing, outputs, result
    and error. It is a pandas DataFrame, so you can sort it, filter it or export it
    (`%steps export results.csv`).
    """),
    code("%steps results"),
    md("""
    ## The same from Python

    `nbsteps.step(name)` is a step's record; `nbsteps.results()` and `nbsteps.graph()` are the table
    and the graph.
    """),
    code("""
    import nbsteps

    rec = nbsteps.step("summary")
    rec.status, rec.cached, rec.attempts, list(rec.outputs)
    """),
    md("""
    ## The live view

    `%steps show` puts the graph, a progress bar and the results table in one widget that keeps
    updating while later runs progress (a `%steps run` in a notebook shows one too).
    """),
    code("%steps show"),
    md("""
    ## What to try next

    * Edit the `clean` cell (say, also drop readings above 40 °C), run it, then `%steps plan`:
      `summary` is stale because its upstream changed; `collect` is not.
    * Add a fourth step that reads `daily` and plots it (`daily.high.unstack("station").plot()`).
      It appears in `%steps graph` with an arrow from `summary`.
    * Restart the kernel and run all cells: every step runs again, because checkpoints live in the
      kernel's memory by default. Notebook 5 shows a store on disk that survives restarts.
    * Next: [2 · Planning before acting](02-planning-before-acting.ipynb).
    """),
]

# ---------------------------------------------------------------------------
# 2. Planning before acting
# ---------------------------------------------------------------------------
NB2 = [
    md("""
    # 2 · Planning before acting

    Before starting a multi-step job, read the whole recipe. Which steps need which? Which ones are
    independent and could happen at the same time? Which chain of steps decides how long the whole
    job takes (the **critical path**)? Doing independent things one after another wastes time;
    doing dependent things at the same time breaks them.

    nbsteps shows you that map before anything runs:

    * in **plan mode** (`%steps mode plan`) a `%%step` cell only *registers* its step;
    * `%steps plan` previews a run: the order, the **levels** (steps in one level do not depend on
      each other, so they can run in parallel), what is cached, the critical path and, once the
      steps have run before, an estimate of the wall time;
    * `%steps run` then runs the plan, independent steps in parallel.

    The task: build a product catalogue for a small shop from four slow back-office systems. The
    slowness is simulated with `time.sleep`, so this notebook needs no network.
    """),
    code("""
    %load_ext nbsteps
    %steps mode plan
    """),
    code("""
    import time

    import numpy as np
    import pandas as pd

    import nbsteps

    N_PRODUCTS = 200


    def slow_call(system: str, seconds: float) -> None:
        \"\"\"Stand-in for a request to a back-office system: it only takes time.\"\"\"
        time.sleep(seconds)


    def skus(n):
        return [f"SKU-{i:04d}" for i in range(n)]
    """),
    md("""
    ## Register the steps

    Four steps fetch from the four systems; none of them needs another. Two steps combine what they
    fetched, and a last one builds the catalogue. In plan mode each cell prints what the step needs
    and what it writes, and runs nothing.
    """),
    code("""
    %%step products
    slow_call("catalogue", 1.0)
    products = pd.DataFrame({
        "sku": skus(N_PRODUCTS),
        "category": np.random.default_rng(1).choice(["garden", "kitchen", "tools"], N_PRODUCTS),
    })
    len(products)
    """),
    code("""
    %%step prices
    slow_call("pricing", 0.8)
    prices = pd.DataFrame({
        "sku": skus(N_PRODUCTS),
        "price": np.random.default_rng(2).gamma(2.0, 12.0, N_PRODUCTS).round(2),
    })
    len(prices)
    """),
    code("""
    %%step stock
    slow_call("warehouse", 0.6)
    stock = pd.DataFrame({
        "sku": skus(N_PRODUCTS),
        "on_hand": np.random.default_rng(3).poisson(8, N_PRODUCTS),
    })
    len(stock)
    """),
    code("""
    %%step reviews
    slow_call("reviews", 1.5)
    review_rng = np.random.default_rng(4)
    reviews = pd.DataFrame({
        "sku": review_rng.choice(skus(N_PRODUCTS), 3 * N_PRODUCTS),
        "stars": review_rng.integers(1, 6, 3 * N_PRODUCTS),
    })
    len(reviews)
    """),
    code("""
    %%step merged
    slow_call("merge", 0.2)
    merged = products.merge(prices, on="sku").merge(stock, on="sku")
    merged.shape
    """),
    code("""
    %%step ratings
    slow_call("scoring", 0.3)
    ratings = reviews.groupby("sku").stars.agg(rating="mean", n_reviews="size").round(2)
    len(ratings)
    """),
    code("""
    %%step catalogue
    catalogue = (
        merged.merge(ratings, left_on="sku", right_index=True, how="left")
        .fillna({"rating": 0, "n_reviews": 0})
        .assign(in_stock=lambda d: d.on_hand > 0)
    )
    catalogue.groupby("category").agg(products=("sku", "size"), mean_price=("price", "mean"),
                                      mean_rating=("rating", "mean")).round(2)
    """),
    md("""
    ## Preview the plan

    Seven steps in three levels. The four fetches are level 0: nothing stops them from running
    together. Nothing has run yet, so nbsteps knows no durations: there is no estimate of the
    wall time, and the critical path it shows is only one of the longest chains of steps.
    """),
    code("%steps plan"),
    code("%steps graph"),
    md("""
    ## Run it

    The four fetches take 1.0 + 0.8 + 0.6 + 1.5 = 3.9 s one after another. Run in parallel, the run
    should take about as long as the critical path: `reviews` → `ratings` → `catalogue`, about 1.8 s.
    """),
    code("%steps run"),
    code("""
    def timing():
        table = nbsteps.results()
        busy = table.duration_s.sum()
        wall = nbsteps.current().last_summary.wall
        print(f"sum of step times {busy:.1f} s; wall time {wall:.1f} s; speed-up {busy / wall:.1f}x")


    timing()
    """),
    md("""
    ## Plan again: now with estimates

    The steps have run once, so `%steps plan` knows how long each takes. `--force-all` previews a run
    that executes everything again (nothing is stale now, so a plain `%steps plan` would show every
    step as cached).
    """),
    code("%steps plan --force-all"),
    md("""
    ## Over-sequencing, measured

    The same plan on one worker: every step waits for the previous one, and the wall time becomes
    the sum of the step times.
    """),
    code("%steps run --force-all --workers 1"),
    code("timing()"),
    md("""
    ## Plan only what you need

    `%steps plan TARGET` and `%steps run TARGET` cover a step and what it needs, nothing else.
    Suppose the shop now sells 300 products. Every fetch reads `N_PRODUCTS`, so every step is stale;
    if all you want right now is the ratings, only `reviews` and `ratings` need to run.
    """),
    code("N_PRODUCTS = 300"),
    code("%steps plan ratings"),
    code("%steps run ratings"),
    code("%steps status"),
    md("""
    The other steps stay stale until you run them: `%steps run` would bring the catalogue up to
    date, and skip `reviews` and `ratings`, which are current.

    ## What to try next

    * Run `%steps run` and check that `reviews` and `ratings` come from their checkpoints.
    * Make `merged` read `ratings` too (say, keep only products with reviews) and look at
      `%steps plan`: the levels and the critical path change.
    * Give `reviews` a `--timeout 1` and see it fail while the other branch completes (then read
      notebook 3).
    * Next: [3 · Partial completion and recovery](03-partial-completion-and-recovery.ipynb).
    """),
]

# ---------------------------------------------------------------------------
# 3. Partial completion and recovery
# ---------------------------------------------------------------------------
NB3 = [
    md("""
    # 3 · Partial completion and recovery

    In multi-step work, getting part of the way is the normal case, not the exception. A useful
    run does not end with "it failed"; it ends with *what is done, what failed and why, and what is
    left*, and the next run picks up from there instead of starting over.

    Not every failure deserves the same answer:

    * a **transient** failure (a service that is briefly down) deserves a **retry**;
    * a **structural** failure (a bug, bad data) must be diagnosed and fixed; retrying cannot help;
    * a failure in a **nice-to-have** step should not stop the rest: proceed without it, with a
      fallback, and say so.

    nbsteps builds these in. A failed step blocks only the steps that need its outputs; independent
    branches run to completion. Every completed step keeps its checkpoint, so after a fix the next
    run executes only what is left.

    The task: a monthly sales report that combines orders, exchange rates from a flaky service,
    a returns log with a bad line in it, and a public-holiday calendar that is nice to have.
    """),
    code("""
    %load_ext nbsteps
    %steps mode plan
    """),
    md("""
    The outside world, simulated so that the notebook behaves the same on every run. Functions
    defined in ordinary cells are part of the plan's fingerprint: edit one and the steps that call
    it become stale.
    """),
    code("""
    import io
    import time
    from datetime import date

    import numpy as np
    import pandas as pd

    import nbsteps

    rate_service_calls = 0


    def fetch_exchange_rates():
        \"\"\"Rates to EUR from a service that is down for the first request.\"\"\"
        global rate_service_calls
        rate_service_calls += 1
        time.sleep(0.2)
        if rate_service_calls == 1:
            raise ConnectionError("rate service returned 503 Service Unavailable")
        return {"EUR": 1.0, "USD": 0.92, "GBP": 1.17}


    def fetch_holidays(country):
        \"\"\"A public-holiday calendar service that is unreachable today.\"\"\"
        raise TimeoutError(f"holiday calendar for {country} did not answer within 5 s")


    RETURNS_LOG = \"\"\"order_id,returned_on,amount
    1007,2024-03-04,19.90
    1032,2024-03-11,5.00
    1101,2024-03-30,42.50
    1188,2024-03-32,12.00
    1203,2024-03-21,8.75
    \"\"\"
    """),
    md("""
    ## The plan

    `fx` gets `--retry 2`: up to two more attempts, with a short back-off between them. `holidays`
    is `--optional`: if it fails, the report is made without it, and the report step checks
    `nbsteps.step("holidays").ok` to choose a fallback.
    """),
    code("""
    %%step orders
    time.sleep(0.5)   # a slow export from the shop system
    order_rng = np.random.default_rng(11)
    orders = pd.DataFrame({
        "order_id": np.arange(1000, 1400),
        "day": pd.Timestamp("2024-03-01") + pd.to_timedelta(order_rng.integers(0, 31, 400), unit="D"),
        "currency": order_rng.choice(["EUR", "USD", "GBP"], 400, p=[0.6, 0.25, 0.15]),
        "amount": order_rng.gamma(2.0, 20.0, 400).round(2),
        "product": order_rng.choice(["tent", "stove", "lamp", "mat", "pack"], 400),
    })
    len(orders)
    """),
    code("""
    %%step fx --retry 2 --retry-delay 0.2
    rates = fetch_exchange_rates()
    rates
    """),
    code("""
    %%step revenue
    sales = orders.assign(eur=(orders.amount * orders.currency.map(rates)).round(2))
    sales.eur.sum().round(2)
    """),
    code("""
    %%step top_products
    top = orders.groupby("product").amount.agg(["count", "sum"]).sort_values("sum", ascending=False)
    top.head(3)
    """),
    code("""
    %%step returns
    returned = pd.read_csv(io.StringIO(RETURNS_LOG))
    returned["returned_on"] = returned.returned_on.map(date.fromisoformat)
    len(returned)
    """),
    code("""
    %%step net
    net_revenue = round(sales.eur.sum() - returned.amount.sum(), 2)
    net_revenue
    """),
    code("""
    %%step holidays --optional
    holiday_days = fetch_holidays("DE")
    """),
    code("""
    %%step report
    if nbsteps.step("holidays").ok:
        busy = sales[~sales.day.isin(holiday_days)]
        note = "holidays excluded"
    else:
        busy = sales   # fallback: no calendar today, count every day
        note = "holiday calendar unavailable: all days counted"
    report = pd.Series({
        "orders": len(sales),
        "net revenue (EUR)": net_revenue,
        "best product": top.index[0],
        "busiest day": busy.groupby("day").size().idxmax().date(),
        "note": note,
    })
    report
    """),
    code("%steps plan"),
    md("""
    ## Run: a failure mid-plan

    Without `--allow-failures`, a run that leaves a step failed ends the cell with an error (so
    Run All, papermill and CI stop, as they should). Here we want to look at the failure, so we
    allow it. Watch the progress lines:

    * `fx` fails on its first attempt, is retried, and succeeds;
    * `returns` fails: line 4 of the log has the date `2024-03-32`;
    * `net` and `report` need `returns`, so they are **blocked**;
    * `revenue` and `top_products` do not need it, so they **complete**;
    * `holidays` fails, but it is optional: it blocks nothing.
    """),
    code("%steps run --allow-failures"),
    md("""
    The last line is the summary: what completed, what failed and why, what is blocked, and what to
    do next. `%steps status` repeats it per step at any time. The failed step's full traceback is on
    its record:
    """),
    code("%steps status"),
    code("print(nbsteps.step(\"returns\").traceback)"),
    md("""
    The retry worked: the record counts the attempts, and the rate service really was called twice.
    """),
    code("""
    nbsteps.step("fx").attempts, rate_service_calls
    """),
    md("""
    ## Fix the cell and resume

    Retrying `returns` cannot help: the data is bad. Diagnose, then fix. Here the fix is to keep
    the lines whose date cannot be parsed out of the total and set them aside for a human; pandas
    can parse the dates and mark the impossible ones as missing (`errors="coerce"`) instead of
    raising. (In your own
    notebook you would edit the cell in place; we register the fixed version in a new cell so that
    both stay readable.)
    """),
    code("""
    %%step returns
    returned = pd.read_csv(io.StringIO(RETURNS_LOG))
    returned["returned_on"] = pd.to_datetime(returned.returned_on, format="ISO8601", errors="coerce")
    bad_returns = returned[returned.returned_on.isna()]
    returned = returned.dropna(subset=["returned_on"])
    f"{len(returned)} returns, {len(bad_returns)} set aside for review"
    """),
    md("""
    The plan shows what the next run will do: `returns` runs because its code changed, `net` and
    `report` because they never ran. Everything that completed is cached.
    """),
    code("%steps plan"),
    code("%steps run"),
    md("""
    `orders`, `fx`, `revenue` and `top_products` were not executed again (`cached` is True, and the
    rate service was not called a third time). `holidays` failed again: it is optional, so the
    report used its fallback and the run still counts as complete.
    """),
    code("%steps results"),
    code("rate_service_calls"),
    code("report"),
    code("%steps graph"),
    md("""
    ## What to try next

    * Make `fetch_holidays` return a list of dates and run `%steps plan`: the helper changed, so
      `holidays` and `report` are stale. Run again and look at the report's note.
    * Change `fx` to `--retry 0` (and reset the counter with `rate_service_calls = 0`): the step
      fails, and `revenue`, `net` and `report` are blocked.
    * Try `%steps run --force-all --fail-fast` with the broken `returns` cell: the run stops
      scheduling at the first failure and the steps it did not start are `cancelled`.
    * Next: [4 · A data pipeline with pandas](04-data-pipeline.ipynb).
    """),
]

# ---------------------------------------------------------------------------
# 4. A real data pipeline with pandas
# ---------------------------------------------------------------------------
NB4 = [
    md("""
    # 4 · A data pipeline with pandas

    A typical analysis has a shape: **load** raw data, **clean** it, run a few **analyses** that do
    not depend on each other, and combine them in a **report**. Written as steps, that shape
    becomes visible and useful: the analyses run in parallel, a mistake in one of them does not
    cost you the others, and tweaking the report reruns only the report.

    The data: a month of trips from a city bike-sharing scheme, generated in the notebook (20,000
    rows, with the usual defects of a real export: duplicated rows, impossible durations, missing
    stations). We write it to a CSV file first so that the pipeline starts where real ones do,
    with a file.

    Along the way: how steps treat the DataFrames they receive (they never change their
    upstream's data), and how to export the results table.
    """),
    code("""
    %load_ext nbsteps
    %steps mode plan
    """),
    code("""
    import tempfile
    from pathlib import Path

    import numpy as np
    import pandas as pd

    import nbsteps

    OUT = Path(tempfile.mkdtemp(prefix="nbsteps-bikes-"))
    RAW_CSV = OUT / "trips-2024-05.csv"
    MAX_MINUTES = 180    # longer trips are lost or stolen bikes, not trips


    def write_raw_export(path, n=20_000, seed=5):
        \"\"\"Write a month of bike trips, with realistic defects, as the operator's CSV export.\"\"\"
        rng = np.random.default_rng(seed)
        stations = [f"{name} St" for name in ("Mill", "Quay", "Park", "Church", "Market", "Bridge",
                                              "Station", "Castle", "Garden", "Harbour")]
        day = rng.integers(0, 31, n)
        busy = np.array([1, 1, 1, 1, 1, 2, 5, 9, 10, 6, 4, 4, 5, 5, 4, 5, 7, 10, 9, 6, 4, 3, 2, 1])
        hour = rng.choice(np.arange(24), n, p=busy / busy.sum())   # rush hours at 8:00 and 17:00
        start = pd.Timestamp("2024-05-01") + pd.to_timedelta(day * 1440 + hour * 60 + rng.integers(0, 60, n),
                                                             unit="min")
        trips = pd.DataFrame({
            "trip_id": np.arange(n),
            "start": start,
            "minutes": np.round(rng.lognormal(2.6, 0.6, n), 1),
            "from_station": rng.choice(stations, n),
            "to_station": rng.choice(stations, n),
            "member": rng.random(n) < 0.7,
        })
        trips.loc[rng.choice(n, 40, replace=False), "minutes"] = rng.uniform(300, 3000, 40).round(1)
        trips.loc[rng.choice(n, 60, replace=False), "to_station"] = None
        trips = pd.concat([trips, trips.sample(150, random_state=seed)]).sort_values("start")
        trips.to_csv(path, index=False)


    write_raw_export(RAW_CSV)
    f"{RAW_CSV.stat().st_size / 1e6:.1f} MB written to {RAW_CSV.name}"
    """),
    md("""
    ## The steps

    Five steps: `load` → `clean` → two independent analyses (`by_hour`, `by_station`) → `report`.
    Each step's last expression is a small check you can eyeball: a shape, a count, a top-3.
    """),
    code("""
    %%step load
    raw = pd.read_csv(RAW_CSV, parse_dates=["start"])
    raw.shape
    """),
    code("""
    %%step clean
    trips = (
        raw.drop_duplicates("trip_id")
        .dropna(subset=["to_station"])
        .loc[lambda d: d.minutes.between(0, MAX_MINUTES, inclusive="right")]
        .reset_index(drop=True)
    )
    pd.Series({"raw rows": len(raw), "clean rows": len(trips), "removed": len(raw) - len(trips)})
    """),
    md("""
    Two analyses that only *read* `trips`, so they do not depend on each other.

    A word on changing a DataFrame in place. Had `by_hour` written `trips["hour"] = ...`, it would
    have produced a *new version* of `trips`. nbsteps gives such a step its own copy, so the
    checkpoint of `clean` never changes and running the step twice never adds a column twice. But
    `by_station`, registered after it, would then read `by_hour`'s version of `trips`, and so wait
    for it. Deriving a new frame with `.assign` keeps `trips` as `clean` made it, and the two
    analyses independent.
    """),
    code("""
    %%step by_hour
    hours = trips.assign(hour=trips.start.dt.hour, weekend=trips.start.dt.day_of_week >= 5)
    hourly = hours.pivot_table(index="hour", columns="weekend", values="trip_id", aggfunc="count")
    hourly.columns = ["weekday", "weekend"]
    hourly = hourly.div(hourly.sum()).round(3)   # share of the day's trips
    hourly.idxmax()
    """),
    code("""
    %%step by_station
    departures = trips.groupby("from_station").size().rename("departures")
    arrivals = trips.groupby("to_station").size().rename("arrivals")
    stations = pd.concat([departures, arrivals], axis=1)
    stations["net"] = stations.arrivals - stations.departures   # > 0: bikes pile up here
    stations["median_minutes"] = trips.groupby("from_station").minutes.median()
    stations.sort_values("net")
    """),
    code("""
    %%step report
    report = pd.DataFrame({
        "metric": [
            "trips (clean)",
            "members' share of trips",
            "weekday peak hour",
            "weekend peak hour",
            "station that needs bikes most",
            "station that overflows most",
        ],
        "value": [
            f"{len(trips):,}",
            f"{trips.member.mean():.0%}",
            f"{hourly.weekday.idxmax()}:00",
            f"{hourly.weekend.idxmax()}:00",
            stations.net.idxmin(),
            stations.net.idxmax(),
        ],
    })
    report
    """),
    code("%steps plan"),
    code("%steps run"),
    md("""
    `by_hour` and `by_station` shared a level and ran side by side. The report:
    """),
    code("report"),
    code("%steps graph"),
    md("""
    ## Change the report, rerun only the report

    Say the report should also give the longest median trip. Editing the report re-registers it;
    the plan shows that only `report` runs.
    """),
    code("""
    %%step report
    report = pd.DataFrame({
        "metric": [
            "trips (clean)",
            "members' share of trips",
            "weekday peak hour",
            "weekend peak hour",
            "station that needs bikes most",
            "station that overflows most",
            "longest median trip from",
        ],
        "value": [
            f"{len(trips):,}",
            f"{trips.member.mean():.0%}",
            f"{hourly.weekday.idxmax()}:00",
            f"{hourly.weekend.idxmax()}:00",
            stations.net.idxmin(),
            stations.net.idxmax(),
            f"{stations.median_minutes.idxmax()} ({stations.median_minutes.max():.1f} min)",
        ],
    })
    report
    """),
    code("%steps plan"),
    code("%steps run"),
    md("""
    ## Export the results table

    `%steps export FILE` writes the results table; the format follows the suffix (`.csv`, `.json`,
    `.parquet`, `.html`). A record of what ran, when, how long it took and what it produced is worth
    keeping next to the report itself.
    """),
    code("""
    %steps export {OUT}/steps.csv
    report.to_csv(OUT / "report.csv", index=False)
    """),
    code("""
    pd.read_csv(OUT / "steps.csv")[["step", "status", "cached", "duration_s", "outputs"]]
    """),
    code("%steps results"),
    md("""
    ## What to try next

    * Set `MAX_MINUTES = 120` and run `%steps plan`: only `clean` reads it, but everything
      downstream of `clean` is stale too.
    * Add a third analysis, e.g. trips per day of the month, and make the report use it. The graph
      gets a third parallel branch.
    * Export the table as HTML (`%steps export {OUT}/steps.html`) and open it.
    * Next: [5 · Risky steps](05-risky-steps.ipynb).
    """),
]

# ---------------------------------------------------------------------------
# 5. Risky steps
# ---------------------------------------------------------------------------
NB5 = [
    md("""
    # 5 · Risky steps: confirm, undo, roll back, and checkpoints on disk

    Some steps are cheap and reversible: recompute, and nobody notices. Others change the world:
    they write to a database, send an email, delete files. Before such a step:

    * **ask** (or have the person running the job approve it up front);
    * **know how to undo it**, and undo automatically when a later step shows it went wrong;
    * **keep a durable record** of what already happened, so that a crash or a kernel restart does
      not make you either forget a step or do it twice.

    nbsteps has one tool for each: `--confirm "question"` on a step, `%%undo NAME` cells with
    `%steps undo` and `%steps run --rollback`, and checkpoint stores on disk (`%steps store DIR`).

    The task: a price update for a small web shop, whose products live in an SQLite database.
    """),
    code("""
    %load_ext nbsteps
    %steps mode plan
    """),
    code("""
    import shutil
    import sqlite3
    import tempfile
    from pathlib import Path

    import pandas as pd

    import nbsteps

    WORK = Path(tempfile.mkdtemp(prefix="nbsteps-shop-"))
    DB = WORK / "shop.db"
    BACKUP = WORK / "shop-backup.db"
    STORE = WORK / "checkpoints"


    def create_shop(path):
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT, price REAL)")
            con.executemany("INSERT INTO products VALUES (?, ?, ?)", [
                ("K-100", "kettle", 29.0), ("T-200", "toaster", 35.0), ("M-300", "mug", 6.5),
                ("P-400", "teapot", 24.0), ("S-500", "spoon set", 12.0),
            ])


    def shop_prices():
        with sqlite3.connect(DB) as con:
            return pd.read_sql("SELECT sku, name, price FROM products ORDER BY sku", con)


    def write_prices(price_list):
        \"\"\"Update the shop's prices; return how many products changed.\"\"\"
        with sqlite3.connect(DB) as con:
            rows = price_list[["price", "sku"]].values.tolist()
            return con.executemany("UPDATE products SET price = ? WHERE sku = ?", rows).rowcount


    create_shop(DB)
    shop_prices()
    """),
    md("""
    ## Checkpoints on disk

    By default checkpoints live in the kernel's memory. `%steps store DIR` keeps them in a
    directory instead: every completed step is written there (DataFrames as Parquet, other values
    with cloudpickle; each file signed with a key kept outside the notebook directory), and a new
    kernel that registers the same steps resumes from them. For steps that change the world this
    matters: after a crash you want to *know* that `apply` already ran.
    """),
    code("%steps store {STORE}"),
    md("""
    ## The plan

    The new prices come from a supplier's price list; one line of it has a typo (a price of
    `-45.0` instead of `45.0`). `apply` asks before it writes; `verify` checks the database
    afterwards. Each step that changes something gets an `%%undo` cell right after it.

    The database work happens in helper functions (defined above, in an ordinary cell) rather than
    in the steps: a step's top-level names are its outputs, and an open database connection is
    nothing you want to checkpoint.
    """),
    code("""
    %%step new_prices
    price_list = pd.DataFrame({
        "sku": ["K-100", "T-200", "M-300", "P-400", "S-500"],
        "price": [31.5, 37.0, 6.9, -45.0, 12.5],
    })
    price_list
    """),
    code("""
    %%step backup
    shutil.copyfile(DB, BACKUP)
    backup_file = BACKUP.name
    backup_file
    """),
    code("""
    %%undo backup
    BACKUP.unlink(missing_ok=True)
    print("undo backup: removed", BACKUP.name)
    """),
    code("""
    %%step apply --after backup --confirm "Write the new prices into shop.db?"
    changed = write_prices(price_list)
    changed
    """),
    code("""
    %%undo apply
    shutil.copyfile(BACKUP, DB)
    print("undo apply: shop.db restored from", BACKUP.name)
    """),
    code("""
    %%step verify --after apply
    prices_now = shop_prices()
    bad = prices_now[prices_now.price <= 0]
    assert bad.empty, f"non-positive prices in the shop: {bad.sku.tolist()}"
    "all prices positive"
    """),
    md("""
    `%steps plan` lists the confirmations ahead, so you know before starting where the run will
    stop and ask.
    """),
    code("%steps plan"),
    md("""
    ## Confirmation

    In JupyterLab, `%steps run` stops before `apply` and asks `Run it? [y/N]` under the cell.
    Answer anything but `y` and `apply` is **cancelled**, `verify` is **blocked**, and the steps
    before it keep their checkpoints.

    To show that without a keyboard (this notebook is also run headless, where nobody can answer),
    we call the Python API with a function that answers "no". `%steps run --yes` (or
    `nbsteps run --yes` on the command line) approves every confirmation up front: use it once you
    have read the plan.
    """),
    code("""
    def say_no(step, question):
        print(f"{step}: {question} -> no")
        return False


    nbsteps.current().run(confirm=say_no)
    """),
    code("shop_prices()"),
    md("""
    Nothing was written. `backup` completed and keeps its checkpoint.

    ## Rollback

    Now approve the write. `--rollback` says: if any step fails, undo the steps that completed *in
    this run*, newest first. `apply` writes the typo, `verify` catches it, and the rollback restores
    the database. (`backup` completed in the previous run, so it is not undone: the backup file
    stays, which is what you want.)
    """),
    code("%steps run --yes --rollback --allow-failures"),
    code("shop_prices()"),
    md("""
    The prices are back to where they were, and `apply` is no longer completed, so it will run
    again after a fix. Fix the price list:
    """),
    code("""
    %%step new_prices
    price_list = pd.DataFrame({
        "sku": ["K-100", "T-200", "M-300", "P-400", "S-500"],
        "price": [31.5, 37.0, 6.9, 45.0, 12.5],
    })
    price_list
    """),
    code("%steps run --yes"),
    code("shop_prices()"),
    md("""
    ## Undo on request

    The supplier calls: the new prices start next month. `%steps undo apply` runs the undo code of
    `apply` and marks it, and everything downstream of it, as not completed.
    """),
    code("%steps undo apply"),
    code("shop_prices()"),
    code("%steps status"),
    md("""
    ## Surviving a kernel restart

    The checkpoints are files in the store directory, one folder per step:
    """),
    code("""
    for path in sorted(STORE.rglob("*")):
        if path.is_file() and not path.parent.name.startswith("."):
            print(f"{str(path.relative_to(STORE)):45} {path.stat().st_size:>7,} bytes")
    """),
    md("""
    A restart cannot happen inside this notebook without stopping it, so we start *new kernels*
    instead: a small notebook with a slow nightly stock check, pointed at the same store, executed
    twice, each time in a fresh kernel (that is what `nbsteps run` does too; see notebook 6). The
    first kernel runs the steps; the second finds their checkpoints on disk and runs nothing.
    """),
    code("""
    import subprocess

    import nbformat
    from nbclient import NotebookClient

    NIGHTLY = [
        "%load_ext nbsteps",
        f"%steps store {STORE}",
        f'''
    import sqlite3, time

    def count_products():
        with sqlite3.connect({str(DB)!r}) as con:
            return con.execute("SELECT count(*) FROM products").fetchone()[0]
    ''',
        '''
    %%step stock_check
    time.sleep(2)   # a slow query
    n_products = count_products()
    n_products
    ''',
        '''
    %%step nightly_report
    f"{n_products} products checked"
    ''',
    ]


    def run_in_new_kernel(cells):
        \"\"\"Execute *cells* in a brand-new kernel and print what they printed.\"\"\"
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.strip()) for c in cells])
        NotebookClient(nb, kernel_name="python3", timeout=120).execute(stderr=subprocess.DEVNULL)
        for cell in nb.cells:
            for out in cell.outputs:
                if out.output_type == "stream":
                    print(out.text, end="")
    """),
    code("""
    %%time
    run_in_new_kernel(NIGHTLY)
    """),
    code("""
    %%time
    run_in_new_kernel(NIGHTLY)
    """),
    md("""
    The second kernel restored both steps from disk: no two-second query. Files that are missing,
    truncated or tampered with are never loaded; nbsteps reports them and runs the step again.

    `%steps reset` drops this notebook's checkpoints (from the store too). The nightly notebook's
    steps are not part of this plan, so their files stay.
    """),
    code("%steps reset"),
    code("sorted(p.name for p in STORE.iterdir() if not p.name.startswith('.'))"),
    md("""
    ## What to try next

    * Put the typo back and run `%steps run --yes` *without* `--rollback`: `verify` fails and the
      bad prices stay in the database; then `%steps undo apply` by hand.
    * Give `verify` its own `%%undo` and watch the rollback order in the progress lines.
    * Open this notebook on a machine of your own, run it once with `%steps store .nbsteps`,
      restart the kernel and run all cells again.
    * Next: [6 · Scaling out](06-scaling-out.ipynb).
    """),
]

# ---------------------------------------------------------------------------
# 6. Scaling out
# ---------------------------------------------------------------------------
NB6 = [
    md("""
    # 6 · Scaling out: a Dask cluster and headless runs

    A plan says *what* depends on *what*; it does not say *where* the steps run. The same plan can
    run on threads in the kernel (the default), on a Dask cluster when one machine is not enough,
    or headless from the command line on a schedule or in CI.

    With `--backend dask`, each step is shipped to a worker as its source code plus the values of
    its inputs; its outputs come back to the kernel, which publishes them and keeps the checkpoints.
    So the notebook still has every result, and a resume works exactly as before. A worker that
    dies mid-step makes the step run again elsewhere; a value that cannot be sent is a clear error
    that names the step and the value.

    The task: an inventory simulation for four reorder policies of a warehouse. Each policy is an
    independent Monte Carlo run, so the four can run on different workers.
    """),
    code("""
    %load_ext nbsteps
    %steps mode plan
    """),
    code("""
    import os
    import sys

    import numpy as np
    import pandas as pd

    import nbsteps

    DAYS = 365
    RUNS = 2_000
    KERNEL_PID = os.getpid()
    """),
    code("""
    %%step demand
    demand_rng = np.random.default_rng(2024)
    season = 1 + 0.3 * np.sin(np.arange(DAYS) / DAYS * 2 * np.pi)
    daily_demand = demand_rng.poisson(20 * season, size=(RUNS, DAYS))
    daily_demand.mean().round(2)
    """),
    md("""
    The simulation is a function defined *inside* a step, so it travels with the step's outputs to
    the steps that use it.
    """),
    code("""
    %%step model
    def simulate(demand, reorder_at, order_size, lead_days=3):
        \"\"\"Stock-outs and average stock for one reorder policy, over every demand run.\"\"\"
        runs, days = demand.shape
        stock = np.full(runs, 200.0)
        arriving = np.zeros((runs, days + lead_days + 1))
        short_days = np.zeros(runs)
        stock_sum = np.zeros(runs)
        on_order = np.zeros(runs, dtype=bool)
        for day in range(days):
            stock += arriving[:, day]
            on_order &= arriving[:, day] == 0
            short_days += demand[:, day] > stock
            stock = np.maximum(stock - demand[:, day], 0)
            order = (stock < reorder_at) & ~on_order
            arriving[order, day + lead_days] += order_size
            on_order |= order
            stock_sum += stock
        return {"stock_out_days": short_days.mean(), "mean_stock": (stock_sum / days).mean()}
    "simulate() defined"
    """),
    code("""
    %%step lean
    lean = simulate(daily_demand, reorder_at=40, order_size=100) | {"pid": os.getpid()}
    lean
    """),
    code("""
    %%step balanced
    balanced = simulate(daily_demand, reorder_at=80, order_size=150) | {"pid": os.getpid()}
    balanced
    """),
    code("""
    %%step safe
    safe = simulate(daily_demand, reorder_at=120, order_size=200) | {"pid": os.getpid()}
    safe
    """),
    code("""
    %%step bulk
    bulk = simulate(daily_demand, reorder_at=60, order_size=400) | {"pid": os.getpid()}
    bulk
    """),
    code("""
    %%step compare
    policies = pd.DataFrame([lean, balanced, safe, bulk], index=["lean", "balanced", "safe", "bulk"])
    policies["ran in"] = np.where(policies.pid == KERNEL_PID, "kernel", "another process")
    policies.drop(columns="pid").round(2)
    """),
    md("""
    ## On threads, in the kernel

    The default backend: every step runs in a thread of this kernel.
    """),
    code("%steps run"),
    code("compare_threads = policies; policies.drop(columns='pid').round(2)"),
    md("""
    ## The same plan on a Dask cluster

    A `LocalCluster` with two worker processes stands in for a real cluster; with a real one you
    pass its scheduler address the same way (`--address tcp://scheduler:8786`). Without
    `--address`, `--backend dask` starts a `LocalCluster` on first use.
    """),
    code("""
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    f"{len(cluster.workers)} workers, scheduler at {cluster.scheduler_address}"
    """),
    code("%steps run --force-all --backend dask --address {cluster.scheduler_address}"),
    md("""
    The policy steps ran in the workers' processes, not in the kernel; the results are the same as
    on threads, and they are back in the notebook's namespace:
    """),
    code("policies.drop(columns='pid').round(2)"),
    code("""
    same = policies.drop(columns=["pid", "ran in"]).equals(compare_threads.drop(columns=["pid", "ran in"]))
    f"same numbers as on threads: {same}"
    """),
    code("%steps results"),
    code("cluster.close()"),
    md("""
    ## Headless: `nbsteps run`

    `nbsteps run NOTEBOOK.ipynb` executes a notebook in a fresh kernel, as Run All would, runs its
    plan, prints progress and the summary, and writes the executed notebook, the results table and
    the graph. Its exit status is 0 when every step completed and 1 otherwise, so it fits a cron
    job or a CI pipeline. `--backend dask --address ...`, `--workers N`, `--store DIR` and `--yes`
    work as in the notebook.

    Here it runs the first notebook of this series. (The first line makes sure the shell finds
    the `nbsteps` command installed next to this kernel's Python; on Binder it is on the `PATH`
    anyway.)
    """),
    code("""
    import tempfile
    from pathlib import Path

    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    OUT = Path(tempfile.mkdtemp(prefix="nbsteps-headless-"))
    """),
    code("""
    !nbsteps run 01-getting-started.ipynb -o {OUT}/01-executed.ipynb --results {OUT}/steps.csv --graph {OUT}/graph.svg
    """),
    code("""
    pd.read_csv(OUT / "steps.csv")[["step", "status", "cached", "attempts", "duration_s", "outputs"]]
    """),
    code("""
    from IPython.display import SVG

    SVG(filename=OUT / "graph.svg")
    """),
    md("""
    ## What to try next

    * Start a scheduler and workers yourself (`dask scheduler`, `dask worker tcp://...` in two
      terminals) and pass `--address` to `%steps run`.
    * Run `!nbsteps run 03-partial-completion-and-recovery.ipynb` and look at its exit status
      (`!nbsteps run ...; echo $?`).
    * Run notebook 5's plan headless with `--store DIR` twice: the second run restores every step
      from the store.
    * Back to the start: [1 · Getting started](01-getting-started.ipynb).
    """),
]

ALL = {
    "01-getting-started.ipynb": NB1,
    "02-planning-before-acting.ipynb": NB2,
    "03-partial-completion-and-recovery.ipynb": NB3,
    "04-data-pipeline.ipynb": NB4,
    "05-risky-steps.ipynb": NB5,
    "06-scaling-out.ipynb": NB6,
}


def build(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.from_dict(c) for c in cells]
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb, timeout: int = 300) -> float:
    from nbclient import NotebookClient

    start = time.perf_counter()
    NotebookClient(
        nb, timeout=timeout, kernel_name=KERNELSPEC["name"], store_widget_state=True,
        record_timing=False, resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    return time.perf_counter() - start


def sources(nb) -> list:
    return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]


def selected(keys: list[str]) -> dict:
    if not keys:
        return ALL
    chosen = {name: cells for name, cells in ALL.items() if any(name.startswith(k) for k in keys)}
    if not chosen:
        raise SystemExit(f"no notebook matches {keys}; choose from {', '.join(ALL)}")
    return chosen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="notebook name prefixes (01, 02, ...); default: all")
    parser.add_argument("--no-execute", action="store_true", help="write the sources without outputs")
    parser.add_argument("--check", action="store_true",
                        help="compare the committed notebooks' cells with this file; write nothing")
    args = parser.parse_args(argv)
    failed = False
    for name, cells in selected(args.only).items():
        path = NOTEBOOKS / name
        nb = build(cells)
        if args.check:
            ok = path.exists() and sources(nbformat.read(path, as_version=4)) == sources(nb)
            print(f"{name}: {'up to date' if ok else 'DIFFERS from scripts/make_notebooks.py'}")
            failed |= not ok
            continue
        if not args.no_execute:
            seconds = execute(nb)
            print(f"{name}: executed in {seconds:.1f} s", flush=True)
        nbformat.validate(nb)
        nbformat.write(nb, path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
