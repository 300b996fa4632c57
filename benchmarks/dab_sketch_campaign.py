"""Issue 14's schedule for DAB-Net Table 2 as 35 jobs, planned over 3-hour sessions and run unattended.

The jobs (``--plan`` lists them with their commands, cost estimates and status):

* QuickDraw-10, Sketch-A-Net 28x28 width 0.5, 2,000 train / 500 test drawings per class, 30 epochs:
  5 settings x 3 seeds = 15 jobs of one seed each;
* QuickDraw-10, ResNet-18 (full width, 32x32, onebit's ImageNet stem), 1,000 train / 500 test per
  class, 20 epochs: 15 jobs of one seed each;
* Sketchy, all 125 classes, Sketch-A-Net 64x64 width 0.5, 30 epochs, 5-fold CV: 5 jobs of the five
  folds each (split into one job per fold if a job would not fit a session).

Every job is one ``benchmarks/dab_sketch.py`` command; each finished seed / fold goes into its row of
``benchmarks/results/dab_sketch.json`` at once (file lock, atomic write) and, with ``--run``, is
committed (``git commit --only`` that file). What is done is read back from that file, so the next
session just runs the same command again and the campaign continues where the committed rows end
(run directories under ``~/onebit-runs`` do not outlive a session; within one, an interrupted
seed resumes from its ``last.ckpt``). After job ``san-qd-dab-fbin-s0`` the K/n, alpha, beta of its
run over training (DAB-Net Figs. 3 and 5) go to ``docs/results/dab_fig_*.png``, and at the end of a
session ``docs/results/dab_table2.png`` is redrawn from the full / partial rows; both committed.

``--run`` runs two lanes side by side (one process each, one thread, ``nice``); each lane takes the
next unfinished job, in the plan's order, whose estimate fits the session time left (``--hours``).
Estimates: the issue's measured one-thread budget (min per 100k training samples, batch 64;
settings between fp and dab-fbin interpolated), the Sketchy geometry (64x64 width 0.5, not in the
issue) from ``benchmarks/dab_sketch_amp.py``'s timing on this host calibrated to the issue's
numbers, times ``--safety`` for ten-crop evaluation, diagnostics and load. ``--amp`` per model:
bf16 where the JSON's ``amp`` timings on this CPU show it >= 15 % faster, FP32 otherwise (a row
already started keeps its amp).

    python benchmarks/dab_sketch_campaign.py --plan                  # the 35 jobs, status, sessions
    nohup python benchmarks/dab_sketch_campaign.py --run --hours 2.8 \\
        > ~/onebit-runs/dab_sketch/campaign.log 2>&1 &                # one session's worth, committed
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dab_sketch as ds  # noqa: E402

SETTINGS = ds.SETTINGS
# the issue's measured budget, min per 100k training samples, one thread, batch 64 (FP32 unless noted);
# the three middle settings are interpolated between fp and dab-fbin (fractions below)
ISSUE_COST = {
    ("sketch_a_net", 28, 0.5): {"fp": 1.1, "dab-fbin": 2.2},
    ("resnet18", 32, 1.0): {"fp": 6.2, "dab-fbin": 17.0},
    ("sketch_a_net", 64, 1.0): {"fp": 42.0, "dab-fbin": 47.0},  # FP32 38-47 (bf16 17-24)
}
INTERP = {"fp": 0.0, "bwn": 0.2, "dab-wbin": 0.4, "xnor": 0.7, "dab-fbin": 1.0}
FIGURE_JOB = "san-qd-dab-fbin-s0"  # the run whose K/n, alpha, beta over training become docs/results/dab_fig_*.png
AMP_MIN_SPEEDUP = 1.15  # bf16 only where it is clearly faster: timings on a shared host vary by ~10 %
CALIBRATE_ON = ("sketch_a_net", 28, 0.5)  # measured / issue ratio of this geometry scales a measured-only one

GROUPS = (
    # (key, model, dataset, size, width, epochs, train_per_class, samples per unit, units per job)
    {"key": "san-qd", "model": "sketch_a_net", "dataset": "quickdraw", "size": 28, "width": 0.5, "epochs": 30,
     "train_per_class": 2000, "classes": 10, "units": [0, 1, 2], "per_job": 1},
    {"key": "san-sk", "model": "sketch_a_net", "dataset": "sketchy", "size": 64, "width": 0.5, "epochs": 30,
     "train_per_class": 20, "classes": 125, "units": [1, 2, 3, 4, 5], "per_job": 5},
    {"key": "res-qd", "model": "resnet18", "dataset": "quickdraw", "size": 32, "width": 1.0, "epochs": 20,
     "train_per_class": 1000, "classes": 10, "units": [0, 1, 2], "per_job": 1},
)


SMOKE_QD = ["--epochs", "1", "--train-per-class", "20", "--test-per-class", "10", "--width", "0.125"]
SMOKE_SK = ["--epochs", "1", "--subset", "4", "--folds", "1,2", "--width", "0.125", "--size", "28"]
"""--smoke: flags appended to every job's command, for checking the machinery in a minute."""


def group_args(g: dict) -> list[str]:
    """dab_sketch.py flags of a group (everything but the setting, units and amp)."""
    a = ["--model", g["model"], "--dataset", g["dataset"], "--epochs", str(g["epochs"]), "--size", str(g["size"]),
         "--width", str(g["width"])]
    if g["dataset"] == "quickdraw":
        a += ["--train-per-class", str(g["train_per_class"]), "--test-per-class", "500"]
    else:
        a += ["--k", "5"]
    return a


def jobs() -> list[dict]:
    """The 35 jobs in run order: per group, per setting, per unit chunk."""
    out = []
    for g in GROUPS:
        for s in SETTINGS:
            for i in range(0, len(g["units"]), g["per_job"]):
                units = g["units"][i: i + g["per_job"]]
                name = (f"{g['key']}-{s}-" + (f"s{units[0]}" if g["dataset"] == "quickdraw" else "f" +
                                               "".join(map(str, units))))
                out.append({"id": name, "group": g, "setting": s, "units": units})
    return out


def _amp_entries(doc: dict, model: str, size: int, width: float, cpu: str) -> list[dict]:
    return [e for e in doc.get("amp", []) if e.get("cpu") == cpu and e.get("model") == model
            and e.get("size") == size and float(e.get("width")) == float(width)]


def choose_amp(doc: dict, g: dict, cpu: str) -> tuple[str, float | None]:
    """(amp flag, measured bf16 speed-up) for a group on this CPU: bf16 if >= AMP_MIN_SPEEDUP faster, else off."""
    es = _amp_entries(doc, g["model"], g["size"], g["width"], cpu)
    if not es:
        return "auto", None
    speedup = sum(e["bf16_speedup_cpu"] for e in es) / len(es)
    return ("bf16" if speedup >= AMP_MIN_SPEEDUP else "off"), round(speedup, 2)


def cost_per_100k(doc: dict, g: dict, setting: str, amp: str, cpu: str) -> tuple[float, str]:
    """Estimated minutes per 100k training samples, one thread, and where the number comes from."""
    key = (g["model"], g["size"], g["width"])
    f = INTERP[setting]
    if key in ISSUE_COST:
        c = ISSUE_COST[key]
        fp32 = c["fp"] + f * (c["dab-fbin"] - c["fp"])
        src = "issue"
    else:
        es = {e["setting"]: e for e in _amp_entries(doc, *key, cpu)}
        cal = {e["setting"]: e for e in _amp_entries(doc, *CALIBRATE_ON, cpu)}
        if {"fp", "dab-fbin"} <= set(es):
            scale = 1.0
            if "fp" in cal:
                scale = ISSUE_COST[CALIBRATE_ON]["fp"] / cal["fp"]["off_cpu_min_per_100k"]
            lo, hi = es["fp"]["off_cpu_min_per_100k"], es["dab-fbin"]["off_cpu_min_per_100k"]
            fp32 = scale * (lo + f * (hi - lo))
            src = "measured, calibrated"
        else:  # width 0.5 at 64x64 from the issue's width 1.0: about a third of the work
            c = ISSUE_COST[(g["model"], g["size"], 1.0)]
            fp32 = 0.35 * (c["fp"] + f * (c["dab-fbin"] - c["fp"]))
            src = "issue w1.0 x 0.35"
    if amp == "bf16":
        es = {e["setting"]: e for e in _amp_entries(doc, *key, cpu)}
        sp = [e["bf16_speedup_cpu"] for e in es.values()]
        if sp:
            fp32 /= sum(sp) / len(sp)
    return fp32, src


def job_samples(job: dict) -> int:
    g = job["group"]
    return g["train_per_class"] * g["classes"] * g["epochs"] * len(job["units"])


def row_matches(row: dict, job: dict) -> bool:
    g = job["group"]
    return (row.get("model") == g["model"] and row.get("dataset") == ds.DATASET_NAMES[g["dataset"]]
            and row.get("setting") == job["setting"] and not row.get("variant") and row.get("epochs") == g["epochs"]
            and row.get("size") == g["size"] and float(row.get("width") or 0) == g["width"]
            and row.get("batch_size", 64) == 64 and row.get("config_id")
            and row.get("train_per_class") == g["train_per_class"]
            and row.get("test_per_class") == (500 if g["dataset"] == "quickdraw" else 5)
            and (g["dataset"] == "quickdraw" or row.get("classes") == g["classes"]))


def job_status(doc: dict, job: dict) -> tuple[list[int], str | None]:
    """(units still to run, amp of the row already started or None)."""
    rows = [r for r in doc["rows"] if row_matches(r, job)]
    if not rows:
        return list(job["units"]), None
    row = max(rows, key=lambda r: len(r.get("units") or []))
    have = set(row.get("seeds") or []) if job["group"]["dataset"] == "quickdraw" else set(row.get("folds") or [])
    return [u for u in job["units"] if u not in have], row.get("amp")


def measured_per_100k(doc: dict, job: dict, cpu: str) -> tuple[float, int] | None:
    """(median CPU minutes per 100k training samples, units) from this job's finished, unresumed units on
    this CPU (process CPU time, so a loaded host does not inflate it), or None before the first lands."""
    g = job["group"]
    per_unit = g["train_per_class"] * g["classes"] * g["epochs"] / 1e5
    secs = [u["cpu_seconds"] for r in doc["rows"] if row_matches(r, job) for u in r.get("units") or []
            if u.get("cpu") == cpu and u.get("cpu_seconds") and not u.get("resumed")]
    if not secs:
        return None
    return statistics.median(secs) / 60 / per_unit, len(secs)


def plan(doc: dict, cpu: str, safety: float, session_h: float) -> list[dict]:
    """Every job with its command, estimate (minutes) and remaining units; long jobs split by unit."""
    out = []
    for job in jobs():
        g = job["group"]
        left, row_amp = job_status(doc, job)
        amp, speedup = choose_amp(doc, g, cpu)
        amp = row_amp or amp
        per100k, src = cost_per_100k(doc, g, job["setting"], amp, cpu)
        got = measured_per_100k(doc, job, cpu)
        if got is not None:  # the job's own finished units beat any model of its cost
            per100k, src = got[0], f"measured, {got[1]} unit(s)"
        est = safety * per100k * job_samples(job) / 1e5
        pieces = [job]
        if est > 0.95 * session_h * 60 and len(job["units"]) > 1:  # does not fit a session: one job per unit
            pieces = [{**job, "id": f"{job['id'][:-len(''.join(map(str, job['units'])))]}{u}", "units": [u]}
                      for u in job["units"]]
        for p in pieces:
            p_left = [u for u in p["units"] if u in left]
            p_est = est * len(p["units"]) / len(job["units"])
            flag = "--seeds" if g["dataset"] == "quickdraw" else "--folds"
            argv = ["python", "benchmarks/dab_sketch.py", *group_args(g), "--settings", p["setting"], flag,
                    ",".join(map(str, p["units"])), "--amp", amp]
            out.append({**p, "amp": amp, "bf16_speedup": speedup, "per100k": round(per100k, 2), "cost_src": src,
                        "est_min": round(p_est, 1), "left": p_left,
                        "left_min": round(p_est * len(p_left) / len(p["units"]), 1),
                        "status": "done" if not p_left else ("todo" if p_left == p["units"] else "partial"),
                        "command": shlex.join(argv)})
    return out


def pack_sessions(items: list[dict], lanes: int, cap_min: float) -> list[list[list[dict]]]:
    """Unfinished jobs, in order, into sessions of ``lanes`` lanes of at most ``cap_min`` estimated minutes:
    each job goes to the least-loaded lane of the first session where it fits."""
    sessions: list[list[list[dict]]] = []
    loads: list[list[float]] = []
    for it in (i for i in items if i["left"]):
        cost = it["left_min"]
        for s, ld in enumerate(loads):
            lane = min(range(lanes), key=lambda k: ld[k])
            if ld[lane] + cost <= cap_min:
                sessions[s][lane].append(it)
                ld[lane] += cost
                break
        else:
            sessions.append([[] for _ in range(lanes)])
            loads.append([0.0] * lanes)
            sessions[-1][0].append(it)
            loads[-1][0] += cost
    return sessions


def print_plan(items: list[dict], args, cpu: str) -> None:
    total = sum(i["est_min"] for i in items)
    left = sum(i["left_min"] for i in items)
    print(f"# DAB-Net Table 2 campaign (issue 14): {len(items)} jobs, ~{total / 60:.1f} core-hours estimated "
          f"(x{args.safety} safety), {left / 60:.1f} h left; CPU {cpu}")
    print("| # | job | units | amp | est min | status | command |")
    print("|---|---|---|---|---|---|---|")
    for n, i in enumerate(items, 1):
        print(f"| {n} | {i['id']} | {','.join(map(str, i['units']))} | {i['amp']} | {i['est_min']:.0f} "
              f"({i['per100k']:.2f} min/100k, {i['cost_src']}) | {i['status']}"
              + (f" (left {','.join(map(str, i['left']))})" if i["status"] == "partial" else "")
              + f" | `nice {i['command']}` |")
    cap = args.hours * 60
    sessions = pack_sessions(items, args.lanes, cap)
    print(f"\n## Remaining jobs over {len(sessions)} session(s) of {args.hours} h, {args.lanes} lanes "
          "(what `--run` does each session: each lane takes the next job that fits)")
    for s, lanes in enumerate(sessions, 1):
        print(f"\nsession {s}:")
        for k, lane in enumerate(lanes):
            mins = sum(i["left_min"] for i in lane)
            print(f"  lane {chr(65 + k)} ({mins:.0f} min): " + ", ".join(i["id"] for i in lane))


def figures_of(args, it: dict) -> None:
    """DAB-Net Figs. 3 and 5 (K/n, alpha, beta over training) of the job's run into docs/results, committed."""
    doc = ds.load_doc(Path(args.json))
    rows = [r for r in doc["rows"] if row_matches(r, it)]
    units = [u for r in rows for u in r.get("units", []) if u.get("seed") == it["units"][0]]
    if not units or not Path(units[0]["run_dir"]).is_dir():
        print(f"figures: no run directory of {it['id']} on this machine", flush=True)
        return
    try:
        out = ds.run_figures(Path(units[0]["run_dir"]), Path(args.figures_out))
    except SystemExit as e:
        print(f"figures: {e}", flush=True)
        return
    if not args.no_commit:
        ds.git_commit(list(out.values()), f"DAB-Net Figs. 3 and 5 (K/n, alpha, beta over training) of {it['id']}")


def table_plot(args) -> None:
    """docs/results/dab_table2.png from the full / partial rows, committed (after each session)."""
    rows = ds.select_rows(ds.load_doc(Path(args.json))["rows"], "full,partial")
    if not rows:
        return
    png = Path(args.figures_out) / "dab_table2.png"
    ds.plot_table2(rows, png)
    if not args.no_commit:
        ds.git_commit([png], "DAB-Net Table 2 figure (accuracy per setting, error bars) from the rows so far")


def job_argv(args, it: dict) -> list[str]:
    """The command a lane runs for a job (its unfinished units only)."""
    g = it["group"]
    flag = "--seeds" if g["dataset"] == "quickdraw" else "--folds"
    argv = ["nice", "-n", str(args.nice), sys.executable, str(ds.REPO / "benchmarks" / "dab_sketch.py"),
            *group_args(g), "--settings", it["setting"], flag, ",".join(map(str, it["left"])),
            "--amp", it["amp"], "--threads", "1", "--json", str(args.json), "--out", str(args.runs)]
    if args.smoke:  # tiny runs of the same commands (later flags win)
        argv += (SMOKE_QD if g["dataset"] == "quickdraw" else SMOKE_SK)
    if not args.no_commit:
        argv.append("--commit")
    return argv


def _take(queue: list[dict], left_min: float) -> dict | None:
    """Pop the first job whose estimate fits ``left_min``."""
    for i, it in enumerate(queue):
        if it["left_min"] <= left_min:
            return queue.pop(i)
    return None


def dry_run(items: list[dict], args) -> int:
    """What ``--run`` would start, lane by lane, with each job taking its estimate (a simulated clock)."""
    queue = [i for i in items if i["left"]]
    clock = [0.0] * args.lanes
    open_lanes = set(range(args.lanes))
    while open_lanes:
        lane = min(open_lanes, key=lambda k: clock[k])
        it = _take(queue, args.hours * 60 - clock[lane])
        if it is None:
            open_lanes.discard(lane)
            continue
        print(f"[+{clock[lane]:5.0f} min] lane {chr(65 + lane)}: {it['id']} (est {it['left_min']:.0f} min): "
              f"{shlex.join(job_argv(args, it))}")
        clock[lane] += it["left_min"]
    print(f"session estimate: lanes {', '.join(f'{c:.0f}' for c in clock)} min; {len(queue)} job(s) left for "
          f"later sessions: {', '.join(i['id'] for i in queue)}")
    return 0


def run_session(items: list[dict], args) -> int:
    """Two (``--lanes``) worker threads, each running the next unfinished job that fits the time left."""
    if args.dry_run:
        return dry_run(items, args)
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.hours * 3600
    queue = [i for i in items if i["left"]]
    lock = threading.Lock()
    ran: list[tuple[str, int]] = []

    def worker(lane: str) -> None:
        while True:
            with lock:
                it = _take(queue, (deadline - time.time()) / 60)
            if it is None:
                return
            argv = job_argv(args, it)
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            print(f"[{time.strftime('%H:%M:%S')}] lane {lane}: {it['id']} (est {it['left_min']:.0f} min): "
                  f"{shlex.join(argv)}", flush=True)
            with open(logs / f"{it['id']}.log", "a") as log:
                rc = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ds.REPO, env=env)
            with lock:
                ran.append((it["id"], rc))
            if rc == 0 and it["id"] == FIGURE_JOB and not args.smoke:
                figures_of(args, it)
            print(f"[{time.strftime('%H:%M:%S')}] lane {lane}: {it['id']} exit {rc} (log {logs / (it['id'] + '.log')})",
                  flush=True)

    threads = [threading.Thread(target=worker, args=(chr(65 + k),)) for k in range(args.lanes)]
    for t in threads:
        t.start()
        time.sleep(2)
    for t in threads:
        t.join()
    if ran and not args.smoke:
        table_plot(args)
    failed = [j for j, rc in ran if rc != 0]
    print(f"session over: {len(ran)} job(s) run, {len(failed)} failed {failed}; {len(queue)} job(s) left for later "
          "sessions (run the same command again next session)", flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true", help="list the jobs, their status and the sessions (default)")
    mode.add_argument("--run", action="store_true", help="run this session's jobs, two lanes side by side")
    mode.add_argument("--json-plan", action="store_true", help="the plan as JSON")
    ap.add_argument("--hours", type=float, default=2.8, help="session length budget (jobs must fit it)")
    ap.add_argument("--lanes", type=int, default=2, help="processes side by side (one thread each)")
    ap.add_argument("--safety", type=float, default=1.3, help="factor on the budget estimates")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--json", default=str(ds.DEFAULT_JSON))
    ap.add_argument("--runs", default=str(ds.DEFAULT_RUNS))
    ap.add_argument("--logs", default=str(ds.DEFAULT_RUNS / "logs"))
    ap.add_argument("--figures-out", default=str(ds.REPO / "docs" / "results"),
                    help="where the Table 2 figure and the K/alpha/beta figures of one run go")
    ap.add_argument("--no-commit", action="store_true", help="do not git-commit the JSON after each seed / fold")
    ap.add_argument("--dry-run", action="store_true", help="with --run: print the commands, run nothing")
    ap.add_argument("--only", default=None, metavar="REGEX", help="only the jobs whose id matches, e.g. 'res-qd'")
    ap.add_argument("--smoke", action="store_true",
                    help="with --run: tiny versions of the jobs (1 epoch, 20 drawings per class, width 0.125); "
                         "use with --json / --runs outside the repository and --no-commit")
    args = ap.parse_args(argv)
    from onebit.train.amp import cpu_model

    cpu = cpu_model()
    items = plan(ds.load_doc(Path(args.json)), cpu, args.safety, args.hours)
    if args.only:
        items = [i for i in items if re.search(args.only, i["id"])]
    if args.json_plan:
        print(json.dumps([{k: v for k, v in i.items() if k != "group"} for i in items], indent=1))
        return 0
    if args.run:
        return run_session(items, args)
    print_plan(items, args, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
