"""Turns the study's results.jsonl (demo/bench/study.sh) into Markdown tables and the plot.

Usage: analyze.py RESULTS.jsonl SUMMARY.md PLOT.png   (needs matplotlib for the plot)

"Ideal" for sleep tasks is what perfectly parallel processes with zero overhead would do (the
bench computes it from the registered slots); for no-op tasks it is linear scaling of the
one-process throughput of the same mode, since a no-op's cost is all overhead.
"""

import csv
import json
import os
import sys

MODES = ["local", "push", "pull"]


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def by(runs, kind):
    """The successful runs of `kind` by (mode, processes); a retry replaces a failure."""
    return {
        (r["study_mode"], r["procs"]): r
        for r in runs
        if r["kind"] == kind and "error" not in r
    }


def failures(runs):
    rows = [r for r in runs if "error" in r]
    if not rows:
        return None
    return "\n".join(
        f"- {r['kind']} {r['study_mode']} P={r['procs']}: {r['error']}" for r in rows
    )


def weak_table(runs):
    noop, sleep = by(runs, "weak-noop"), by(runs, "weak-sleep")
    rows = [
        "| mode | P | tasks | no-op tasks/s | ideal (P × P=1) | % | sleep tasks/s | ideal | % "
        "| sleep p50 ms | redis cmds/task (no-op) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        base = noop.get((mode, 1))
        for p in sorted({p for (m, p) in noop if m == mode}):
            n, s = noop[(mode, p)], sleep.get((mode, p))
            ideal_n = base["throughput"] * p if base else None
            cells = [
                mode,
                p,
                n["tasks"],
                f"{n['throughput']:.0f}",
                f"{ideal_n:.0f}" if ideal_n else "–",
                f"{100 * n['throughput'] / ideal_n:.0f}" if ideal_n else "–",
            ]
            if s:
                cells += [
                    f"{s['throughput']:.1f}",
                    f"{s['ideal_throughput']:.1f}",
                    f"{100 * s['efficiency']:.1f}",
                    f"{s['p50_ms']:.1f}",
                ]
            else:
                cells += ["–"] * 4
            cells.append(n["redis_cmds_per_task"])
            rows.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(rows)


def mib(kib):
    return f"{kib / 1024:.1f}"


def throughput_table(runs):
    noop, batch, rtt, sleep8 = by(runs, "noop"), by(runs, "batch"), by(runs, "rtt"), by(runs, "sleep8")
    rows = [
        "| mode | P | no-op tasks/s | p50 / p99 ms | batch submit/s | batch tasks/s "
        "| rtt p50 / p99 ms | sleep 8 procs % ideal | redis cmds/task | peak RSS MiB gw / disp / worker |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        for (m, p), n in sorted(noop.items()):
            if m != mode:
                continue
            b, t = batch.get((m, p)), rtt.get((m, p))
            s8 = next((r for (mm, _), r in sleep8.items() if mm == m), None)
            rss = n["rss_kib"]
            rows.append(
                "| "
                + " | ".join(
                    [
                        mode,
                        str(p),
                        f"{n['throughput']:.0f}",
                        f"{n['p50_ms']:.1f} / {n['p99_ms']:.1f}",
                        f"{b['submit_rate']:.0f}" if b else "–",
                        f"{b['throughput']:.0f}" if b else "–",
                        f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f}" if t else "–",
                        f"{100 * s8['efficiency']:.1f}" if s8 else "–",
                        str(n["redis_cmds_per_task"]),
                        f"{mib(rss['gateway'])} / {mib(rss['dispatcher'])} / "
                        + (mib(rss["worker"]) if rss["worker"] else "–"),
                    ]
                )
                + " |"
            )
    return "\n".join(rows)


def cpu_table(runs):
    rows = [
        "| run | mode | P | gateway | dispatcher (+ Python) | worker (+ Python) | redis | tasks/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in ["noop", "batch"]:
        for (mode, p), r in sorted(by(runs, kind).items()):
            c = r["cpu_cores"]
            rows.append(
                f"| {kind} | {mode} | {p} | {c['gateway']:.2f} | {c['dispatcher']:.2f} | "
                f"{c['worker']:.2f} | {c['redis']:.2f} | {r['throughput']:.0f} |"
            )
    return "\n".join(rows)


def commands_table(runs):
    noop = by(runs, "noop")
    per_mode = {}
    # Commands per task hardly depend on P; the smallest P of each mode stands for it.
    for (mode, _), r in sorted(noop.items(), reverse=True):
        ran = r["tasks"] + r["warmup"]
        per_mode[mode] = {k: v / ran for k, v in r["redis_commands"].items()}
    names = sorted(
        {k for d in per_mode.values() for k, v in d.items() if v >= 0.01},
        key=lambda k: -max(d.get(k, 0) for d in per_mode.values()),
    )
    modes = [m for m in MODES if m in per_mode]
    rows = ["| command | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for name in names:
        rows.append(
            f"| {name} | " + " | ".join(f"{per_mode[m].get(name, 0):.2f}" for m in modes) + " |"
        )
    rows.append(
        "| **total** | "
        + " | ".join(f"**{sum(per_mode[m].values()):.2f}**" for m in modes)
        + " |"
    )
    return "\n".join(rows)


def million(runs, results_path):
    r = next((r for r in runs if r["kind"] == "million"), None)
    path = os.path.join(os.path.dirname(results_path), "million_rss.csv")
    if not r or not os.path.exists(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    # After the first minute the pools and buffers have their working size.
    def span(col):
        vals = [int(x[col]) for x in rows if x[col] and int(x["t_s"]) >= 10]
        return f"{mib(min(vals))} – {mib(max(vals))}" if vals else "–"

    peak_q = max(int(x["queue_len"] or 0) for x in rows)
    return (
        f"1,000,000 no-op tasks through /execute_batch (10,000 per request) on local mode with "
        f"{r['procs']} processes: submitted at {r['submit_rate']:.0f}/s, completed at "
        f"{r['throughput']:.0f}/s, {r['failures']} failed; the queue peaked at {peak_q:,} "
        f"entries. RSS from 10 s on (MiB): gateway {span('gateway_kib')}, dispatcher "
        f"{span('dispatcher_kib')}, redis {span('redis_kib')}."
    )


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"local": "tab:blue", "push": "tab:orange", "pull": "tab:green"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, kind, title in [
        (axes[0], "weak-noop", "no-op tasks (ideal: P × the P=1 rate)"),
        (axes[1], "weak-sleep", "sleep(100 ms) tasks"),
    ]:
        runs_k = by(runs, kind)
        for mode in MODES:
            pts = sorted((p, r) for (m, p), r in runs_k.items() if m == mode)
            if not pts:
                continue
            xs = [p for p, _ in pts]
            ax.plot(xs, [r["throughput"] for _, r in pts], "o-", color=colors[mode], label=mode)
            if kind == "weak-noop":
                base = pts[0][1]["throughput"] / pts[0][0]
                ideal = [base * p for p in xs]
            else:
                ideal = [r["ideal_throughput"] for _, r in pts]
            ax.plot(xs, ideal, "--", color=colors[mode], alpha=0.5, label=f"{mode} ideal")
        ax.set_title(f"Weak scaling, {title}", fontsize=10)
        ax.set_ylabel("completed tasks/s")
    sleep = by(runs, "weak-sleep")
    for mode in MODES:
        pts = sorted((p, r) for (m, p), r in sleep.items() if m == mode)
        if pts:
            axes[2].plot(
                [p for p, _ in pts],
                [100 * r["efficiency"] for _, r in pts],
                "o-",
                color=colors[mode],
                label=mode,
            )
    axes[2].axhline(95, color="grey", linestyle=":", label="target 95%")
    axes[2].set_ylim(80, 101)
    axes[2].set_title("sleep(100 ms) tasks: measured / ideal", fontsize=10)
    axes[2].set_ylabel("% of ideal throughput")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
        ax.set_xlabel("worker processes (5 tasks each)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    results, summary, png = sys.argv[1:4]
    runs = load(results)
    parts = [
        "## Weak scaling (5 tasks per process, all in flight)\n\n" + weak_table(runs),
        "## Throughput, batch submission and round trip\n\n" + throughput_table(runs),
        "## CPU cores used during the throughput runs\n\n" + cpu_table(runs),
        "## Redis commands per task (no-op throughput run)\n\n" + commands_table(runs),
    ]
    f = failures(runs)
    if f:
        parts.append("## Runs without a report (each was tried once more)\n\n" + f)
    m = million(runs, results)
    if m:
        parts.append("## A million tasks\n\n" + m)
    with open(summary, "w") as f:
        f.write("\n\n".join(parts) + "\n")
    plot(runs, png)
    print(open(summary).read())


if __name__ == "__main__":
    main()
