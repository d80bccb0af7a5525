"""How well does a cheap training budget rank architectures like a 5× longer one?

Trains N architectures of the ``bimtdp`` space (the four presets plus a stratified, seeded sample)
at a reference ``long`` budget (5× the proxy's steps, more training and evaluation scenes) and at
several candidate proxy budgets (the proxy as it was before this study, and variants of its
resolution, steps, data size and learning rate). Every budget has its own FP teacher (Δm is always against the teacher
trained at the same budget and seed); the ``mtdp-fp`` preset *is* that teacher (Δm 0 by
definition, its seconds are the teacher's).

``--table`` prints, for every candidate: Kendall τ and Spearman ρ of Δm against ``long`` (with
p-values and a bootstrap interval over architectures), agreement of the Pareto front on
(Δm max, OPs min) with the long budget's front, the measured seconds per architecture, τ per
second, and the budget chosen by the rule in :func:`choose`.

Runs are appended to one CSV, one row per (budget, architecture), as soon as each finishes;
re-running skips the rows already there. Any number of processes may run the same command at
once: each (budget, architecture) run and each teacher is claimed with a non-blocking ``flock`` on
a file under ``<teacher-dir>/claims<out path>/`` (released by the kernel when a process dies), so
they share the work without a shard plan; a process that finds a budget's teacher being trained elsewhere moves on
to the next budget and comes back.

Usage (what made docs/proxy_quality.csv: ≈ 100 CPU-minutes, 97 min of wall time with two
one-thread processes on a 2-core machine shared with other jobs; see docs/EXPERIMENTS.md)::

    for i in 1 2; do nice -n 10 .venv/bin/python benchmarks/proxy_quality.py --threads 1 \\
        --out docs/proxy_quality.csv --budgets long proxy s150 r32 s150-lr4e-3 proxy@s2 s150-lr4e-3@s2 & done; wait
    .venv/bin/python benchmarks/proxy_quality.py --table --out docs/proxy_quality.csv
    .venv/bin/python benchmarks/proxy_quality.py --list       # the architectures and every budget

Budgets are derived from :data:`STUDY_BASE` (the ``proxy`` as it was before this study), not from
the current ``proxy``, so re-running resumes the same study; ``--base smoke`` runs the pipeline in
seconds (the test suite does).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from nas.model.arch import Architecture  # noqa: E402
from nas.model.tasks import TASKS, get_task  # noqa: E402
from nas.training.fidelity import Fidelity, get_fidelity  # noqa: E402
from nas.training.prior import below_prior, prior_metrics  # noqa: E402
from nas.training.teacher import Teacher  # noqa: E402
from nas.training.train import TrainingError, fit, load_data, set_threads  # noqa: E402
from search_spaces import get_preset, get_space  # noqa: E402

FIELDS = ["budget", "seed", "steps", "resolution", "train_images", "eval_images", "batch_size", "lr",
          "arch", "name", "width", "binarized", "decoder.sharing", "ops", "semseg_miou", "depth_rmse",
          "normals_mean", "edges_odsf", "delta_m", "seconds", "status", "cpu_seconds"]
REFERENCE = "long"
#: The ``arch``/``name``/``status`` of a budget's trivial-prior row (:mod:`nas.training.prior`, on that
#: budget's scenes): a run worse than it on some task is *flagged* (it learned nothing there), and
#: the table also gives τ without flagged runs.
PRIOR = "prior"
PRESETS = ("mtdp-fp", "bi-mtdp-f", "bi-mtdp-c", "bi-mtdp-naive")
#: Widths sampled: 0.75 is left out to keep the long budget affordable on 2 CPU cores (a width-0.75
#: step costs ≈ 2× a width-0.5 one and ≈ 4× a width-0.25 one).
WIDTHS = (0.25, 0.5)
SHARINGS = ("separate", "grouped", "shared")
#: Strata of the number of binarized modules (of 8: four backbone stages, neck, decoders,
#: cross-task module, heads).
BINARY_BUCKETS = ((0, 1), (2, 3), (4, 5), (6, 8))


# ------------------------------------------------------------------------------------- budgets
@dataclass(frozen=True)
class Budget:
    name: str
    fidelity: Fidelity
    seed: int
    doc: str


#: The ``proxy`` fidelity as it was when this study ran (nas/training/fidelity.py has changed since, to the
#: study's ``s150-lr4e-3``): the budgets derive from it, so that re-running resumes the same study.
STUDY_BASE = Fidelity("proxy-before-tuning", resolution=64, train_images=512, eval_images=128, steps=300,
                      batch_size=32, lr=2e-3)


def budgets(base: Fidelity | None = None) -> dict[str, Budget]:
    """The reference and the candidates, derived from ``base`` (default: :data:`STUDY_BASE`).

    The reference trains with seed 0 and the candidates with seed 1, so that a candidate shares no
    initialisation or batch order with the reference (a shared seed would inflate agreement);
    ``proxy@s2`` repeats ``proxy`` at seed 2: its τ against ``proxy`` is the seed-noise ceiling.
    """
    p = base or STUDY_BASE
    specs = [
        (REFERENCE, dict(steps=p.steps * 5, train_images=p.train_images * 4, eval_images=p.eval_images * 4), 0,
         "5× the steps, 4× the training and evaluation scenes"),
        ("proxy", {}, 1, "the proxy before this study"),
        ("s150", dict(steps=max(1, p.steps // 2)), 1, "half the steps"),
        ("r32", dict(resolution=32), 1, "32 px (¼ of the pixels)"),
        ("lr4e-3", dict(lr=p.lr * 2), 1, "twice the learning rate"),
        ("s150-lr4e-3", dict(steps=max(1, p.steps // 2), lr=p.lr * 2), 1, "half the steps, twice the lr"),
        ("proxy@s2", {}, 2, "the proxy before this study, another seed (noise ceiling)"),
        ("s150-lr4e-3@s2", dict(steps=max(1, p.steps // 2), lr=p.lr * 2), 2, "s150-lr4e-3, another seed"),
        ("e512", dict(eval_images=p.eval_images * 4), 1, "4× the evaluation scenes (less metric noise)"),
        ("d1024", dict(train_images=p.train_images * 2), 1, "2× the training scenes"),
    ]
    return {name: Budget(name, p.with_(name=f"pq-{name}", **changes), seed, doc) for name, changes, seed, doc in specs}


# ------------------------------------------------------------------------------- architectures
def binarized(arch: Architecture) -> int:
    b = arch.binarize
    return sum(b.stages) + b.neck + b.decoders + b.distill + b.heads


def architectures(n: int = 12, seed: int = 0, *, presets: bool = True) -> dict[str, Architecture]:
    """``name -> Architecture``: the presets, then ``n - 4`` stratified samples of ``bimtdp``.

    With ``n`` below 4 (tests), the first ``n`` presets.

    Sample ``i`` has width ``WIDTHS[i % 2]``, decoder sharing ``SHARINGS[i % 3]`` and a number of
    binarized modules in ``BINARY_BUCKETS[(i // 2) % 4]`` (so every bucket comes at both widths);
    everything else (which modules, binarizer, IB, KD, cross-task module) is drawn uniformly by
    ``SearchSpace.sample`` with one seeded generator, rejecting draws outside the bucket and repeats.
    """
    space = get_space("bimtdp")
    chosen: dict[str, Architecture] = {}
    if presets:
        chosen.update({name: get_preset(name) for name in PRESETS[:n]})
    rng = np.random.default_rng(seed)
    ids = {a.id for a in chosen.values()}
    for i in range(n - len(chosen)):
        width, sharing = WIDTHS[i % len(WIDTHS)], SHARINGS[i % len(SHARINGS)]
        low, high = BINARY_BUCKETS[(i // 2) % len(BINARY_BUCKETS)]
        stratum = space.with_choices({"width": [width], "decoder.sharing": [sharing]})
        for _ in range(10_000):
            arch = stratum.sample(rng)
            if low <= binarized(arch) <= high and arch.id not in ids:
                break
        else:  # pragma: no cover - every bucket is reachable in every stratum
            raise RuntimeError(f"no architecture found for stratum {i}")
        ids.add(arch.id)
        chosen[f"s{i:02d}-w{width}-{sharing[:3]}-b{binarized(arch)}"] = arch
    return chosen


def ops_of(arch: Architecture) -> float:
    from nas.cost.arch_cost import cost_of

    return float(cost_of(arch, "synth")["ops"])


# ------------------------------------------------------------------------------ CSV and claims
def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def done_keys(path: Path) -> set[tuple[str, str]]:
    return {(r["budget"], r["arch"]) for r in read_rows(path)}


def append(path: Path, row: dict) -> None:
    """Append one row under an exclusive lock (the header only into an empty file).

    A file whose header lacks trailing columns added since (``cpu_seconds``) gets the new header;
    its old rows read those columns as empty.
    """
    with path.open("a+", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if f.tell() == 0:
                writer.writeheader()
            else:
                f.seek(0)
                text = f.read()
                header, _, rest = text.partition("\n")
                if header.strip() != ",".join(FIELDS) and ",".join(FIELDS).startswith(header.strip()):
                    f.seek(0)
                    f.truncate()
                    f.write(",".join(FIELDS) + "\r\n" + rest)
                f.seek(0, os.SEEK_END)
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def claim(path: Path) -> Iterator[bool]:
    """Try to hold ``path``'s lock without waiting; yields whether it was obtained."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ run
def primary_row(metrics: dict) -> dict[str, float]:
    return {f"{t}_{get_task(t).primary_metric}": metrics[t][get_task(t).primary_metric] for t in metrics}


def _settings(budget: Budget) -> dict:
    f = budget.fidelity
    return {"budget": budget.name, "seed": budget.seed, "steps": f.steps, "resolution": f.resolution,
            "train_images": f.train_images, "eval_images": f.eval_images, "batch_size": f.batch_size, "lr": f.lr}


def _row(budget: Budget, name: str, arch: Architecture, ops: float) -> dict:
    return {**_settings(budget), "arch": arch.id, "name": name, "width": arch.width, "binarized": binarized(arch),
            "decoder.sharing": arch.decoder.sharing, "ops": ops}


def _prior_row(budget: Budget, train, val) -> dict:
    return {**_settings(budget), "arch": PRIOR, "name": PRIOR, "width": "", "binarized": "", "decoder.sharing": "", "ops": 0.0,
            **primary_row(prior_metrics(train, val)), "delta_m": "", "seconds": "", "status": PRIOR, "cpu_seconds": ""}


def run_budget(budget: Budget, archs: dict[str, Architecture], ops: dict[str, float], out: Path, args,
               log: Callable[[str], None]) -> bool:
    """Run what is left of one budget; False if its teacher is being trained by another process."""
    claims = Path(args.teacher_dir) / ("claims" + str(out.resolve()).replace(os.sep, "_"))
    f = budget.fidelity
    for row in read_rows(out):  # a CSV made from another base must not be "resumed" under the same names
        if row["budget"] == budget.name and [row[k] for k in ("steps", "resolution", "train_images", "eval_images", "seed")] \
                != [str(v) for v in (f.steps, f.resolution, f.train_images, f.eval_images, budget.seed)] \
                or row["budget"] == budget.name and float(row["lr"]) != f.lr:
            raise SystemExit(f"{out}: budget {budget.name!r} was run with other settings ({row['steps']} steps, "
                             f"{row['resolution']} px, lr {row['lr']}, seed {row['seed']}); use another --out or --base")
    done = done_keys(out)
    trained = all((budget.name, a.id) in done for a in archs.values())
    if trained and (budget.name, PRIOR) in done:
        return True
    teacher_dir = Path(args.teacher_dir) / f"{budget.name}-seed{budget.seed}"
    with claim(claims / f"{budget.name}-teacher.lock") as mine:
        if not mine:
            return False
        train, val = load_data("synth", budget.fidelity, cache_dir=args.cache_dir)
        if (budget.name, PRIOR) not in done_keys(out):
            append(out, _prior_row(budget, train, val))
        if trained:
            return True
        said: list[str] = []
        cpu = time.process_time()
        teacher = Teacher.load_or_train(teacher_dir, train, val, budget.fidelity, seed=budget.seed,
                                        log=lambda m: (said.append(m), log(m)))
        if any(m.startswith("training the FP teacher") for m in said):
            (teacher_dir / "cpu_seconds.json").write_text(json.dumps(time.process_time() - cpu))
    teacher_seconds = json.loads((teacher_dir / "metrics.json").read_text())["seconds"]
    cpu_file = teacher_dir / "cpu_seconds.json"
    teacher_cpu = json.loads(cpu_file.read_text()) if cpu_file.is_file() else ""
    for name, arch in archs.items():
        with claim(claims / f"{budget.name}-{arch.id}.lock") as mine:
            if not mine or (budget.name, arch.id) in done_keys(out):
                continue
            row = _row(budget, name, arch, ops[name])
            if arch == teacher.arch:  # the teacher itself: same network, data, seed and budget
                row.update(primary_row(teacher.metrics), delta_m=0.0, seconds=float(teacher_seconds), status="teacher",
                           cpu_seconds=teacher_cpu)
            else:
                try:
                    cpu = time.process_time()
                    result, _ = fit(arch, train, val, budget.fidelity, teacher=teacher, seed=budget.seed)
                    row.update(primary_row(result.metrics), delta_m=result.delta_m, seconds=result.seconds, status="ok",
                               cpu_seconds=time.process_time() - cpu)
                except TrainingError as error:
                    row.update(delta_m="", seconds="", status=f"failed: {error}"[:200])
            append(out, row)
            dm = row["delta_m"]
            log(f"{budget.name:>12} {name:<28} " + (f"Δm {dm:+7.2f}  {row['seconds']:6.1f} s" if dm != "" else row["status"]))
    return True


def run(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plan = budgets(STUDY_BASE if args.base == "study" else get_fidelity(args.base))
    names = args.budgets or list(plan)
    unknown = [b for b in names if b not in plan]
    if unknown:
        raise SystemExit(f"unknown budget(s) {unknown}; known: {list(plan)}")
    archs = architectures(args.archs, args.arch_seed)
    ops = {name: ops_of(arch) for name, arch in archs.items()}
    log = (lambda m: print(f"[{os.getpid()}] {m}", flush=True))
    pending = list(names)
    while pending:
        # The first budget (in the order given) whose teacher is free; after each one finishes,
        # start again from the top, so that a process that skipped a budget whose teacher was
        # being trained elsewhere joins it as soon as that teacher is cached.
        finished = next((name for name in pending if run_budget(plan[name], archs, ops, out, args, log)), None)
        if finished is None:
            time.sleep(args.poll)  # every teacher left is being trained elsewhere
        else:
            pending.remove(finished)


# ---------------------------------------------------------------------------------------- table
@dataclass
class Quality:
    budget: str
    n: int
    tau: float
    tau_p: float
    tau_ci: tuple[float, float]
    rho: float
    rho_p: float
    precision: float
    recall: float
    jaccard: float
    seconds: float
    teacher_seconds: float
    resolution: int = 0
    tau_clean: float = math.nan  # over the architectures flagged (worse than the prior) in neither run
    n_clean: int = 0

    @property
    def tau_per_100s(self) -> float:
        return 100.0 * self.tau / self.seconds if self.seconds > 0 else math.nan


def _seconds(row: dict) -> float:
    """The run's CPU seconds (one thread: its compute, whatever else the machine runs), else its wall time."""
    return float(row.get("cpu_seconds") or row["seconds"])


def _front(dm: np.ndarray, ops: np.ndarray) -> set[int]:
    from analysis.pareto import pareto_mask

    return set(np.flatnonzero(pareto_mask(np.column_stack([dm, ops]), ["maximize", "minimize"])).tolist())


def flagged(rows: list[dict]) -> dict[tuple[str, str], list[str]]:
    """``(budget, arch) -> tasks`` of every run worse than its budget's prior row on some task."""
    priors = {r["budget"]: _metrics(r) for r in rows if r["status"] == PRIOR}
    out = {}
    for r in rows:
        if r["budget"] in priors and r["status"] in ("ok", "teacher"):
            tasks = below_prior(_metrics(r), priors[r["budget"]])
            if tasks:
                out[(r["budget"], r["arch"])] = tasks
    return out


def _metrics(row: dict) -> dict[str, dict[str, float]]:
    """A CSV row's primary metrics as ``{task: {metric: value}}``."""
    out = {}
    for column, value in row.items():
        task, _, metric = column.partition("_")
        if value not in ("", None) and metric and task in TASKS and get_task(task).primary_metric == metric:
            out[task] = {metric: float(value)}
    return out


def quality(rows: list[dict], budget: str, *, reference: str = REFERENCE, boot: int = 2000) -> Quality | None:
    """Rank and front agreement of ``budget`` with ``reference`` over the architectures both finished."""
    from scipy.stats import kendalltau, spearmanr

    def ok(name: str) -> dict[str, dict]:
        return {r["arch"]: r for r in rows if r["budget"] == name and r["delta_m"] not in ("", None)}

    ref, cand = ok(reference), ok(budget)
    common = sorted(set(ref) & set(cand))
    if len(common) < 3:
        return None
    x = np.array([float(ref[a]["delta_m"]) for a in common])
    y = np.array([float(cand[a]["delta_m"]) for a in common])
    ops = np.array([float(ref[a]["ops"]) for a in common])
    tau, tau_p = kendalltau(x, y)
    bad = flagged(rows)
    has_prior = {r["budget"] for r in rows if r["status"] == PRIOR} >= {reference, budget}
    clean = np.array([(reference, a) not in bad and (budget, a) not in bad for a in common]) & has_prior
    tau_clean = float(kendalltau(x[clean], y[clean])[0]) if clean.sum() >= 3 else math.nan
    rho, rho_p = spearmanr(x, y)
    rng = np.random.default_rng(0)
    taus = []
    for _ in range(boot):
        i = rng.integers(len(common), size=len(common))
        if len(set(i.tolist())) > 2:
            t = kendalltau(x[i], y[i])[0]
            if not math.isnan(t):
                taus.append(t)
    lo, hi = (np.percentile(taus, [5, 95]) if taus else (math.nan, math.nan))
    front_ref, front_cand = _front(x, ops), _front(y, ops)
    both = len(front_ref & front_cand)
    trained = [cand[a] for a in common if cand[a]["status"] == "ok"]
    if any(r.get("cpu_seconds") for r in trained):  # rows of an older version of this script have wall time only
        trained = [r for r in trained if r.get("cpu_seconds")]
    trained = [_seconds(r) for r in trained]
    teacher = [_seconds(r) for r in rows if r["budget"] == budget and r["status"] == "teacher"]
    return Quality(
        budget=budget, n=len(common), tau=float(tau), tau_p=float(tau_p), tau_ci=(float(lo), float(hi)),
        rho=float(rho), rho_p=float(rho_p),
        precision=both / len(front_cand), recall=both / len(front_ref), jaccard=both / len(front_ref | front_cand),
        seconds=float(np.mean(trained)) if trained else math.nan,
        teacher_seconds=teacher[0] if teacher else math.nan,
        resolution=int(cand[common[0]]["resolution"]),
        tau_clean=tau_clean, n_clean=int(clean.sum()),
    )


def paired_tau_difference(rows: list[dict], budget: str, versus: str = "proxy", *, reference: str = REFERENCE,
                          boot: int = 2000) -> tuple[float, float, float] | None:
    """τ(budget) − τ(versus) against the reference, with a 90 % bootstrap interval.

    Architectures are resampled once for both budgets (paired), over those all three finished.
    """
    from scipy.stats import kendalltau

    def ok(name: str) -> dict[str, float]:
        return {r["arch"]: float(r["delta_m"]) for r in rows if r["budget"] == name and r["delta_m"] not in ("", None)}

    ref, a, b = ok(reference), ok(budget), ok(versus)
    common = sorted(set(ref) & set(a) & set(b))
    if len(common) < 3:
        return None
    x, y, z = (np.array([d[k] for k in common]) for d in (ref, a, b))
    diff = kendalltau(x, y)[0] - kendalltau(x, z)[0]
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(boot):
        i = rng.integers(len(common), size=len(common))
        d = kendalltau(x[i], y[i])[0] - kendalltau(x[i], z[i])[0]
        if not math.isnan(d):
            diffs.append(d)
    lo, hi = np.percentile(diffs, [5, 95]) if diffs else (math.nan, math.nan)
    return float(diff), float(lo), float(hi)


def choose(results: list[Quality], *, goal: float = 0.7, resolution: int | None = None) -> Quality | None:
    """The candidate with the most τ per second among those reaching the goal τ; else the best τ.

    Only candidates compared on the most architectures take part (a half-finished budget's τ over a
    few architectures says little); repeats at another seed (``name@sN``) are never chosen; with
    ``resolution``, only candidates at that resolution (the ``proxy`` fidelity also trains on the
    real datasets, so a resolution that only suits 64-px synth scenes is not a general choice).
    """
    pool = [q for q in results if "@s" not in q.budget and not math.isnan(q.seconds)
            and (resolution is None or q.resolution == resolution)]
    most = max((q.n for q in pool), default=0)
    pool = [q for q in pool if q.n == most]
    good = [q for q in pool if q.tau >= goal]
    if good:
        return max(good, key=lambda q: q.tau_per_100s)
    return max(pool, key=lambda q: q.tau, default=None)


def table(path: Path, *, goal: float = 0.7) -> str:
    rows = read_rows(Path(path))
    plan = budgets()
    names = [b for b in dict.fromkeys(r["budget"] for r in rows) if b != REFERENCE]
    names.sort(key=lambda b: list(plan).index(b) if b in plan else len(plan))
    results = [q for q in (quality(rows, b) for b in names) if q is not None]
    ref = [r for r in rows if r["budget"] == REFERENCE]
    ref_ok = [_seconds(r) for r in ref if r["status"] == "ok" and r.get("cpu_seconds")]
    lines = []
    if ref:
        f = ref[0]
        lines.append(f"reference `{REFERENCE}`: {f['steps']} steps, {f['resolution']} px, {f['train_images']} train / "
                     f"{f['eval_images']} eval scenes, lr {f['lr']}, seed {f['seed']}: {len(ref)} runs, "
                     f"{sum(r['delta_m'] != '' for r in ref)} finished, "
                     f"{(np.mean(ref_ok) if ref_ok else math.nan):.0f} CPU s per architecture")
        lines.append("")
    lines += [
        "| budget | steps | px | train/eval | lr | seed | pixel-steps vs `proxy` | n | Kendall τ (p) [90% CI] "
        "| τ without flagged runs (worse than the prior on a task) | Spearman ρ (p) "
        "| front P / R / J | CPU s / arch | teacher s | τ per 100 s | τ − τ(`proxy`) [90% CI] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    pixel_steps = lambda r: int(r["steps"]) * int(r["batch_size"]) * int(r["resolution"]) ** 2  # noqa: E731
    base = next((pixel_steps(r) for r in rows if r["budget"] == "proxy"), None)
    for q in results:
        f = next(r for r in rows if r["budget"] == q.budget)
        nominal = pixel_steps(f) / base if base else math.nan
        d = paired_tau_difference(rows, q.budget) if q.budget != "proxy" else None
        delta = f"{d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]" if d else "–"
        lines.append(
            f"| `{q.budget}` | {f['steps']} | {f['resolution']} | {f['train_images']}/{f['eval_images']} | {f['lr']} "
            f"| {f['seed']} | {nominal:.2f}× "
            f"| {q.n} | {q.tau:.2f} ({q.tau_p:.1g}) [{q.tau_ci[0]:.2f}, {q.tau_ci[1]:.2f}] | {q.tau_clean:.2f} (n {q.n_clean}) "
            f"| {q.rho:.2f} ({q.rho_p:.1g}) | {q.precision:.2f} / {q.recall:.2f} / {q.jaccard:.2f} "
            f"| {q.seconds:.1f} | {q.teacher_seconds:.0f} | {q.tau_per_100s:.2f} | {delta} |"
        )
    for repeat in (b for b in names if "@s" in b):
        noise = quality(rows, repeat, reference=repeat.split("@")[0])
        if noise is not None:
            lines += ["", f"seed noise: `{repeat.split('@')[0]}` vs `{repeat}` (same budget, another seed): "
                          f"τ {noise.tau:.2f}, ρ {noise.rho:.2f}, front Jaccard {noise.jaccard:.2f} over {noise.n} architectures"]
    proxy_px = next((int(r["resolution"]) for r in rows if r["budget"] == "proxy"), None)
    for label, best in (("", choose(results, goal=goal, resolution=proxy_px)),
                        (" (any resolution)", choose(results, goal=goal))):
        if best is not None:
            lines += ["", f"chosen{label}: most τ per second among τ ≥ {goal} (else the best τ)"
                          + (f" at `proxy`'s {proxy_px} px" if label == "" and proxy_px else "")
                          + f": `{best.budget}` (τ {best.tau:.2f}, {best.seconds:.1f} CPU s per architecture)"]
    return "\n".join(lines)


def delta_m_table(path: Path) -> str:
    """Δm of every architecture at every budget (architectures sorted by the reference's Δm)."""
    rows = read_rows(Path(path))
    plan = list(budgets())
    names = sorted(dict.fromkeys(r["budget"] for r in rows), key=lambda b: plan.index(b) if b in plan else len(plan))
    by = {(r["budget"], r["arch"]): r for r in rows}
    bad = flagged(rows)
    archs = list(dict.fromkeys((r["arch"], r["name"]) for r in rows if r["status"] != PRIOR))
    key = lambda a: -float(by[(REFERENCE, a[0])]["delta_m"]) if by.get((REFERENCE, a[0]), {}).get("delta_m") else math.inf  # noqa: E731
    archs.sort(key=key)
    lines = ["| architecture | GOPs | " + " | ".join(f"`{b}`" for b in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for arch, name in archs:
        ops = next(float(r["ops"]) for r in rows if r["arch"] == arch) / 1e9
        cells = [f"{float(by[(b, arch)]['delta_m']):+.1f}" + (" ⚠" if (b, arch) in bad else "")
                 if by.get((b, arch), {}).get("delta_m") else "–" for b in names]
        lines.append(f"| {name} | {ops:.3f} | " + " | ".join(cells) + " |")
    if bad:
        names_of = dict(archs)
        runs = ", ".join(f"{names_of.get(a, a)} at `{b}` ({', '.join(t)})" for (b, a), t in sorted(bad.items()))
        lines += ["", f"⚠: worse than the trivial prior (the budget's `{PRIOR}` row) on a task: {runs}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/proxy_quality.csv")
    parser.add_argument("--budgets", nargs="+", help=f"budgets to run, in this order (default: all: {list(budgets())})")
    parser.add_argument("--base", default="study",
                        help="the fidelity the budgets derive from: a named one (smoke for a test) or 'study' "
                             "(default: the proxy as it was when docs/proxy_quality.csv was made)")
    parser.add_argument("--archs", type=int, default=12, help="number of architectures, presets included (default 12)")
    parser.add_argument("--arch-seed", type=int, default=0, help="seed of the architecture sample (default 0)")
    parser.add_argument("--teacher-dir", default="/tmp/bimtdp-proxy-quality-teachers")
    parser.add_argument("--cache-dir", default="/tmp/bimtdp-synth-cache")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--poll", type=float, default=10.0, help="seconds between looks at a teacher trained elsewhere")
    parser.add_argument("--table", action="store_true", help="only print the tables of --out")
    parser.add_argument("--list", action="store_true", help="only list the architectures and budgets")
    args = parser.parse_args(argv)
    if args.table:
        print(table(Path(args.out)))
        print()
        print(delta_m_table(Path(args.out)))
        return
    if args.list:
        for name, arch in architectures(args.archs, args.arch_seed).items():
            print(f"{name:<28} {arch.id}  GOPs {ops_of(arch) / 1e9:.3f}")
        for b in budgets(STUDY_BASE if args.base == "study" else get_fidelity(args.base)).values():
            print(f"{b.name:<12} seed {b.seed}  {b.fidelity.to_dict()}  ({b.doc})")
        return
    run(args)


if __name__ == "__main__":
    main()
