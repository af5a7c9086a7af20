#!/usr/bin/env python3
"""Medians of the hareperf reports that benches/compare.sh wrote, Hare against RabbitMQ.

    python3 benches/compare_medians.py OUT_DIR

OUT_DIR holds one directory per scenario, each with `<broker>-<run>.json` (a hareperf report)
for broker `hare` and `rabbitmq`; rss1m adds `<broker>-<run>.rss.json` with the VmRSS that
compare.sh read. Prints a Markdown table: per scenario and key figure, the median over the runs
for each broker, the ratio Hare ÷ RabbitMQ, the target and whether it is met. Loss is the worst
run, not the median: one lost message in any run matters. Only the standard library is used, so
the script runs wherever compare.sh does.
"""

import json
import re
import statistics
import sys
from pathlib import Path

BROKERS = ("hare", "rabbitmq")
SCENARIO_ORDER = (
    "transient", "confirm100", "confirm1000", "backlog", "latency5k", "cpu20k", "rss1m", "declare",
    "retry", "delayed",
)
REPORT_NAME = re.compile(r"^(hare|rabbitmq)-(\d+)\.json$")
# hareperf's own CPU above this share of a core means the client, not the broker, may set the
# rate; the table then says so.
CLIENT_BUSY_PERCENT = 90.0


def results(run):
    return run["report"]["results"]


def latency_us(kind, percentile):
    def figure(run):
        summary = results(run).get(kind)
        return None if summary is None else float(summary[percentile])

    return figure


def flood_rate(run):
    """Messages published and confirmed per second of the flood.

    The flood lasts until the last confirm, so this is the rate at which the broker took the
    backlog on durably, not only the rate at which hareperf wrote it. hareperf reports it
    exactly (`flood_rate_per_s`: first publish to last confirm); reports from before that
    divide by the flood phase as marked, which ended only after the producers had closed.
    """
    exact = results(run).get("flood_rate_per_s")
    if exact is not None:
        return float(exact)
    flood = phase(run, "flood")
    if flood is None or flood["end_s"] <= flood["start_s"]:
        return None
    return results(run)["confirmed"] / (flood["end_s"] - flood["start_s"])


def drain_rate(run):
    """Messages accepted per second from the end of the flood until the last one was accepted.

    Exact (`drain_rate_per_s`). It includes the wait for the messages the stalled consumers hold
    until the trouble phase ends, so it never beats the backlog ÷ the trouble time; reports from
    before hareperf measured it have none.
    """
    exact = results(run).get("drain_rate_per_s")
    return None if exact is None else float(exact)


def drain_rate_held_aside(run):
    """Messages accepted per second from the end of the flood until the backlog was gone.

    hareperf reports it exactly (`drain_unheld_rate_per_s`): "gone" is the moment every message
    but those the stalled consumers still held at the end of the trouble phase had been
    accepted; those come back only when the trouble phase ends, by design, whatever the
    broker's speed. For older reports it is estimated from the samples: "gone" is the first
    one-second sample by which consumers had accepted every message except
    those the stalled and dropped consumers held; those come back only when the trouble phase
    ends, by design, whatever the broker's speed. Samples are one second wide and the drain is
    taken to end at the end of its last sample, so for a broker that drains in a few seconds
    this is a lower bound. Without such a sample (the run ended inside the last second), the
    drain ends with the recovery phase.
    """
    r = results(run)
    exact = r.get("drain_unheld_rate_per_s")
    if exact is not None:
        return float(exact)
    flood = phase(run, "flood")
    if flood is None:
        return None
    v = r["verification"]
    target = v["expected"] - v["stalled_held"] - v["dropped_held"]
    series = run["report"]["series"]
    accepted = 0.0
    previous_t = 0.0
    end_s = None
    for t, per_s in zip(series["t_s"], series["accepted_per_s"]):
        accepted += per_s * (t - previous_t)
        previous_t = t
        # A rate times its sample's width gives back the count up to float rounding (and the
        # first sample's few ms of setup); one message of slack absorbs that.
        if t > flood["end_s"] and accepted >= target - 1:
            end_s = t
            break
    if end_s is None:
        recovery = phase(run, "recovery")
        if recovery is None:
            return None
        end_s = recovery["end_s"]
    if end_s <= flood["end_s"]:
        return None
    return target / (end_s - flood["end_s"])


def phase(run, name):
    return next((p for p in run["report"].get("phases", []) if p["name"] == name), None)


def broker_cpu_s_per_million(run):
    r = results(run)
    if r.get("broker_cpu_s") is None or r["published"] == 0:
        return None
    return r["broker_cpu_s"] * 1e6 / r["published"]


def rss_kib(key):
    """A VmRSS that compare.sh read itself (`<broker>-<run>.rss.json`)."""

    def figure(run):
        rss = run.get("rss")
        return None if rss is None else float(rss[key])

    return figure


def rss_idle_kib(run):
    """The broker's RSS before the run: hareperf's `broker_rss_start_kib`, else compare.sh's."""
    start = results(run).get("broker_rss_start_kib")
    return float(start) if start is not None else rss_kib("idle_rss_kib")(run)


def rss_backlog_kib(run):
    """The broker's RSS with the backlog in place: hareperf's `broker_rss_end_kib` (read when the
    run ended, before anything was deleted), else what compare.sh read 2 s later."""
    end = results(run).get("broker_rss_end_kib")
    return float(end) if end is not None else rss_kib("backlog_rss_kib")(run)


def rss_growth_kib(run):
    idle, backlog = rss_idle_kib(run), rss_backlog_kib(run)
    return None if idle is None or backlog is None else backlog - idle


def left_queued(run):
    value = results(run)["verification"].get("left_queued")
    return None if value is None else float(value)


def result(key):
    def figure(run):
        value = results(run).get(key)
        return None if value is None else float(value)

    return figure


def lost(run):
    return float(results(run)["verification"]["lost"])


def duplicates(run):
    return float(results(run)["verification"]["duplicates"])


def message_count(run):
    return float(run["rss"]["messages"]) if run.get("rss") else None


# A target: (text, kind, bound). Kinds: "ratio_min" / "ratio_max" bound Hare ÷ RabbitMQ,
# "hare_max" bounds Hare's own figure, "zero" wants both brokers at zero, "equals_messages"
# wants every broker to have confirmed the messages rss1m asked for.
RATE_10X = ("≥ 10×", "ratio_min", 10.0)
CLIENT_CPU = ("hareperf CPU (% of a core)", "percent", result("client_cpu_percent"), None, "median")
BROKER_CPU = ("broker CPU (% of a core)", "percent", result("broker_cpu_percent"), None, "median")
LOST = ("lost (worst run)", "count", lost, None, "max")

# Per scenario: (figure, unit, how to get it from a run, target or None, aggregate).
FIGURES = {
    "transient": [
        ("publish rate (msg/s)", "rate", result("publish_rate_per_s"), RATE_10X, "median"),
        ("deliver rate (msg/s)", "rate", result("deliver_rate_per_s"), RATE_10X, "median"),
        ("deliver latency p99", "us", latency_us("deliver_latency", "p99_us"), None, "median"),
        LOST,
        CLIENT_CPU,
        BROKER_CPU,
    ],
    "confirm100": [
        ("publish rate (msg/s)", "rate", result("publish_rate_per_s"), RATE_10X, "median"),
        ("deliver rate (msg/s)", "rate", result("deliver_rate_per_s"), None, "median"),
        ("confirm latency p99", "us", latency_us("confirm_latency", "p99_us"), None, "median"),
        LOST,
        CLIENT_CPU,
        BROKER_CPU,
    ],
    "backlog": [
        ("flood rate, confirmed (msg/s)", "rate", flood_rate, RATE_10X, "median"),
        # The target goes on the drain without the held messages: the full drain waits for the
        # trouble phase to end on either broker, so its ratio says little about speed.
        ("drain rate, held aside (msg/s)", "rate", drain_rate_held_aside, RATE_10X, "median"),
        ("drain rate, to the last message (msg/s)", "rate", drain_rate, None, "median"),
        ("lost (worst run)", "count", lost, ("0", "zero", 0.0), "max"),
        ("duplicates (worst run)", "count", duplicates, None, "max"),
        CLIENT_CPU,
        BROKER_CPU,
    ],
    "latency5k": [
        ("publish rate (msg/s)", "rate", result("publish_rate_per_s"), None, "median"),
        ("deliver latency p50", "us", latency_us("deliver_latency", "p50_us"), None, "median"),
        ("deliver latency p99", "us", latency_us("deliver_latency", "p99_us"),
         ("Hare ≤ 1 ms", "hare_max", 1000.0), "median"),
        LOST,
        CLIENT_CPU,
        BROKER_CPU,
    ],
    "cpu20k": [
        ("publish rate (msg/s)", "rate", result("publish_rate_per_s"), None, "median"),
        ("broker CPU-s per M msgs", "seconds", broker_cpu_s_per_million,
         ("≤ 1/10", "ratio_max", 0.1), "median"),
        LOST,
        CLIENT_CPU,
        BROKER_CPU,
    ],
    "rss1m": [
        ("messages confirmed", "count", result("confirmed"), ("all", "equals_messages", 0.0), "min"),
        ("messages left queued", "count", left_queued, None, "min"),
        ("publish rate (msg/s)", "rate", result("publish_rate_per_s"), None, "median"),
        ("broker RSS idle", "kib", rss_idle_kib, None, "median"),
        ("broker RSS with the backlog", "kib", rss_backlog_kib,
         ("≤ 1/20", "ratio_max", 0.05), "median"),
        # RabbitMQ keeps moving messages into its message store after the confirms; compare.sh
        # reads the RSS again once that has settled.
        ("… 2 s later", "kib", rss_kib("backlog_rss_kib"), None, "median"),
        # RabbitMQ runs every scenario in one node, and the Erlang allocators keep memory the
        # earlier scenarios used; the growth shows what the backlog itself costs.
        ("broker RSS growth from the backlog", "kib", rss_growth_kib, None, "median"),
        CLIENT_CPU,
    ],
}
FIGURES["confirm1000"] = FIGURES["confirm100"]


def declare_curve(key):
    """A figure of the declare scenario's queue.declare curve."""
    def figure(run):
        declare = results(run).get("declare") or {}
        for curve in declare.get("curves", []):
            if curve["change"] == "queue_declare":
                return curve.get(key)
        return None
    return figure


# Durable declares one after another on one connection: an answer must cost the same however
# many queues exist (the last window's rate within 20 % of the first's).
FIGURES["declare"] = [
    ("queue.declare rate, whole run (/s)", "rate", declare_curve("rate_per_s"), None, "median"),
    ("… first window (/s)", "rate", declare_curve("first_window_rate_per_s"), None, "median"),
    ("… last window (/s)", "rate", declare_curve("last_window_rate_per_s"), None, "median"),
    ("… last ÷ first window", "ratio", declare_curve("last_to_first_ratio"),
     ("Hare ≥ 0.8", "hare_min", 0.8), "median"),
    BROKER_CPU,
]


def scenario_figure(scenario, key):
    """A figure of the retry or delayed results (`results.retry` / `results.delayed`)."""
    def figure(run):
        value = (results(run).get(scenario) or {}).get(key)
        return None if value is None else float(value)
    return figure


def lateness_us(percentile):
    """A percentile of how late the delayed messages fired."""
    def figure(run):
        summary = (results(run).get("delayed") or {}).get("lateness")
        return None if summary is None else float(summary[percentile])
    return figure


# Every message refused once, through a TTL retry queue, and acked on its second delivery.
# Loss must be zero on Hare.
FIGURES["retry"] = [
    ("acked rate, first publish → last ack (msg/s)", "rate",
     scenario_figure("retry", "acked_rate_per_s"), None, "median"),
    ("deliveries per message", "ratio", scenario_figure("retry", "deliveries_per_message"), None,
     "median"),
    ("first publish → final ack p50", "us", latency_us("deliver_latency", "p50_us"), None,
     "median"),
    ("first publish → final ack p99", "us", latency_us("deliver_latency", "p99_us"), None,
     "median"),
    ("lost (worst run)", "count", lost, ("Hare 0", "hare_max", 0.0), "max"),
    ("duplicates (worst run)", "count", duplicates, None, "max"),
    ("acked after an unplanned number of deliveries (worst run)", "count",
     scenario_figure("retry", "off_plan"), None, "max"),
    CLIENT_CPU,
    BROKER_CPU,
]

# Messages delayed over a window in a random order: how late they fire, and the memory the
# broker needs to hold them.
FIGURES["delayed"] = [
    ("lateness p50", "us", lateness_us("p50_us"), None, "median"),
    ("lateness p99", "us", lateness_us("p99_us"), None, "median"),
    ("lateness max", "us", lateness_us("max_us"), None, "median"),
    ("fired more than 1 ms early (worst run)", "count", scenario_figure("delayed", "early"), None,
     "max"),
    ("publish rate, confirmed (msg/s)", "rate", result("publish_rate_per_s"), None, "median"),
    ("broker RSS peak", "kib", result("broker_rss_max_kib"), None, "median"),
    ("broker RSS before publishing", "kib", scenario_figure("delayed", "broker_rss_before_kib"),
     None, "median"),
    ("broker RSS after publishing", "kib", scenario_figure("delayed", "broker_rss_published_kib"),
     None, "median"),
    ("broker RSS per delayed message", "bytes",
     scenario_figure("delayed", "broker_rss_per_message_bytes"), None, "median"),
    ("lost (worst run)", "count", lost, ("Hare 0", "hare_max", 0.0), "max"),
    CLIENT_CPU,
    BROKER_CPU,
]


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = Path(argv[1])
    runs = load_runs(out)
    if not runs:
        print(f"no hareperf reports under {out}", file=sys.stderr)
        return 1
    notes = []
    print(header(runs))
    print()
    print("| scenario | figure | Hare | RabbitMQ | Hare ÷ RabbitMQ | target | met |")
    print("| --- | --- | ---: | ---: | ---: | --- | --- |")
    for scenario in sorted(runs, key=scenario_rank):
        by_broker = runs[scenario]
        counts = " / ".join(str(len(by_broker.get(b, []))) for b in BROKERS)
        for index, (label, unit, figure, target, aggregate) in enumerate(FIGURES.get(scenario, [])):
            values = {b: aggregated(by_broker.get(b, []), figure, aggregate) for b in BROKERS}
            ratio = None
            # hareperf's CPU is there to show when the client is the limit; a ratio of it
            # would only invite a comparison that means nothing.
            if figure is not CLIENT_CPU[2] and values["hare"] is not None and values["rabbitmq"]:
                ratio = values["hare"] / values["rabbitmq"]
            name = f"{scenario} (n = {counts})" if index == 0 else ""
            print(
                f"| {name} | {label} | {fmt(values['hare'], unit)} | {fmt(values['rabbitmq'], unit)}"
                f" | {'–' if ratio is None else f'{ratio:.2f}×'}"
                f" | {target[0] if target else ''} | {met(target, values, ratio, by_broker)} |"
            )
        notes.extend(run_notes(scenario, by_broker))
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    return 0


def load_runs(out):
    """{scenario: {broker: [run, …]}}, each run {"name", "report", "rss"?}, in run order."""
    runs = {}
    for directory in sorted(p for p in out.iterdir() if p.is_dir()):
        for path in sorted(directory.glob("*.json"), key=lambda p: p.name):
            match = REPORT_NAME.match(path.name)
            if not match:
                continue
            broker, index = match.group(1), int(match.group(2))
            run = {"name": f"{directory.name}/{path.name}", "index": index,
                   "report": json.loads(path.read_text())}
            rss = path.with_name(f"{broker}-{index}.rss.json")
            if rss.exists():
                run["rss"] = json.loads(rss.read_text())
            runs.setdefault(directory.name, {}).setdefault(broker, []).append(run)
    for by_broker in runs.values():
        for broker_runs in by_broker.values():
            broker_runs.sort(key=lambda run: run["index"])
    return runs


def header(runs):
    """Machine and broker versions, from the reports themselves."""
    labels = {}
    machine = None
    for by_broker in runs.values():
        for broker, broker_runs in by_broker.items():
            for run in broker_runs:
                report = run["report"]
                labels.setdefault(broker, report["broker"]["label"])
                machine = machine or report["machine"]
    text = "Brokers: " + ", ".join(labels[b] for b in BROKERS if b in labels)
    if machine:
        text += f"; machine: {machine['cores']} cores, {machine['cpu_model']}, {machine['kernel']}"
    return text + ". Medians over n runs (Hare / RabbitMQ); loss is the worst run."


def aggregated(broker_runs, figure, aggregate):
    values = [v for v in (figure(run) for run in broker_runs) if v is not None]
    if not values:
        return None
    if aggregate == "max":
        return max(values)
    if aggregate == "min":
        return min(values)
    return statistics.median(values)


def met(target, values, ratio, by_broker):
    if target is None:
        return ""
    _, kind, bound = target
    if kind != "equals_messages" and None in values.values():
        return "–"
    if kind == "ratio_min":
        ok = ratio is not None and ratio >= bound
    elif kind == "ratio_max":
        ok = ratio is not None and ratio <= bound
    elif kind == "hare_max":
        ok = values["hare"] is not None and values["hare"] <= bound
    elif kind == "hare_min":
        ok = values["hare"] is not None and values["hare"] >= bound
    elif kind == "zero":
        ok = all(v == 0 for v in values.values())
    elif kind == "equals_messages":
        ok = all(
            results(run)["confirmed"] == message_count(run)
            for broker_runs in by_broker.values()
            for run in broker_runs
        )
    else:
        raise ValueError(f"unknown target kind {kind}")
    return "yes" if ok else "**no**"


def run_notes(scenario, by_broker):
    """What a reader must know about single runs: errors, loss, a busy client."""
    notes = []
    for broker in BROKERS:
        for run in by_broker.get(broker, []):
            report = run["report"]
            r = report["results"]
            for error in report.get("errors", []):
                notes.append(f"{run['name']}: hareperf error: {error}")
            left = r["verification"].get("left_queued")
            if scenario == "rss1m" and left is not None and left != r["published"]:
                notes.append(f"{run['name']}: {left} of {r['published']} messages left queued")
            # Before hareperf reported `left_queued`, a run without consumers (rss1m) counted
            # every message as lost, by design.
            no_consumer_run = scenario == "rss1m" and "left_queued" not in r["verification"]
            if not no_consumer_run and r["verification"]["lost"] > 0:
                sample = ", ".join(r["verification"]["lost_sample"])
                notes.append(f"{run['name']}: {r['verification']['lost']} lost (e.g. {sample})")
            delayed = r.get("delayed")
            if scenario == "delayed" and delayed and run["index"] == 1:
                notes.append(
                    f"{run['name']}: --delay-mode {delayed['mode']}, {r['published']:,} messages"
                    f" over {delayed['window_s']:g} s"
                )
            if r["client_cpu_percent"] >= CLIENT_BUSY_PERCENT:
                notes.append(
                    f"{run['name']}: hareperf used {r['client_cpu_percent']:.0f} % of a core;"
                    " the client may be the limit"
                )
    return notes


def scenario_rank(scenario):
    return SCENARIO_ORDER.index(scenario) if scenario in SCENARIO_ORDER else len(SCENARIO_ORDER)


def fmt(value, unit):
    if value is None:
        return "–"
    if unit in ("rate", "count"):
        return f"{value:,.0f}"
    if unit == "us":
        if value >= 1e6:
            return f"{value / 1e6:.2f} s"
        return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} µs"
    if unit == "percent":
        return f"{value:.0f} %"
    if unit == "seconds":
        return f"{value:.2f} s"
    if unit == "kib":
        return f"{value / 1024:.1f} MiB"
    if unit == "ratio":
        return f"{value:.2f}"
    if unit == "bytes":
        return f"{value:,.0f} B"
    raise ValueError(f"unknown unit {unit}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
