"""benchmarks/proxy_quality.py at smoke budgets: CSV rows, resume, claims, and the agreement table."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from _scripts import benchmark_script


@pytest.fixture(scope="module")
def pq():
    with benchmark_script("proxy_quality") as module:
        yield module


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_the_pipeline_at_smoke_writes_one_row_per_run_and_resumes(pq, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pq, "ops_of", lambda arch: float(9 - pq.binarized(arch)))  # cost is tested elsewhere
    out = tmp_path / "q.csv"
    argv = ["--base", "smoke", "--archs", "3", "--budgets", "long", "proxy", "--out", str(out),
            "--teacher-dir", str(tmp_path / "teachers"), "--cache-dir", str(tmp_path / "cache"), "--threads", "1"]
    pq.main(argv)
    rows = _rows(out)
    assert len(rows) == 2 * (3 + 1)  # three architectures and the trivial prior per budget
    assert {(r["budget"], r["name"]) for r in rows} == {
        (b, a) for b in ("long", "proxy") for a in ("mtdp-fp", "bi-mtdp-f", "bi-mtdp-c", "prior")}
    priors = [r for r in rows if r["status"] == "prior"]
    assert all(float(r["depth_rmse"]) > 0 and r["delta_m"] == "" for r in priors)
    rows = [r for r in rows if r["status"] != "prior"]
    teacher_rows = [r for r in rows if r["name"] == "mtdp-fp"]
    assert all(r["status"] == "teacher" and float(r["delta_m"]) == 0.0 for r in teacher_rows)
    assert {r["steps"] for r in rows if r["budget"] == "long"} == {"15"}  # 5 × smoke's 3 steps
    assert all(r["status"] in ("ok", "teacher") and float(r["seconds"]) > 0 for r in rows)

    pq.main(argv)  # nothing left: nothing appended
    assert len(_rows(out)) == len(rows) + len(priors)
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-1]) + "\n")  # lose the last run: resuming redoes only it
    pq.main(argv)
    again = [r for r in _rows(out) if r["status"] != "prior"]
    assert len(again) == len(rows)
    same = lambda r: {k: v for k, v in r.items() if "seconds" not in k}  # noqa: E731
    assert same(again[-1]) == same(rows[-1])  # same seed, same cached teacher: the same result

    text = pq.table(out)
    assert "| `proxy` |" in text and "chosen" in text
    # 3 smoke steps learn next to nothing: runs worse than the prior are flagged in the Δm table
    bad = pq.flagged(_rows(out))
    assert bad and all(b in ("long", "proxy") and tasks for (b, _), tasks in bad.items())
    assert " ⚠" in pq.delta_m_table(out) and "worse than the trivial prior" in pq.delta_m_table(out)

    # rows made with other settings under the same budget name are refused, not silently "resumed"
    changed = [dict(r, steps="4") if r["budget"] == "proxy" else r for r in again]
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=pq.FIELDS)
        writer.writeheader()
        writer.writerows(changed)
    with pytest.raises(SystemExit, match="other settings"):
        pq.main(argv)
    assert "| bi-mtdp-c |" in pq.delta_m_table(out)


def test_agreement_measures(pq) -> None:
    def rows(budget, dms, ops=(1.0, 2.0, 3.0, 4.0)):
        return [{"budget": budget, "arch": f"a{i}", "delta_m": str(d), "ops": str(o), "seconds": "2",
                 "status": "ok", "resolution": "64"} for i, (d, o) in enumerate(zip(dms, ops))]

    long = rows("long", [-30, -20, -10, 0])  # every point on the front (better costs more)
    same = pq.quality(long + rows("proxy", [-3, -2, -1, 0]), "proxy", boot=50)
    assert same.tau == pytest.approx(1.0) and same.rho == pytest.approx(1.0)
    assert same.jaccard == same.precision == same.recall == 1.0 and same.seconds == 2.0
    reversed_ = pq.quality(long + rows("proxy", [0, -1, -2, -3]), "proxy", boot=50)
    assert reversed_.tau == pytest.approx(-1.0)
    assert reversed_.precision == 1.0 and reversed_.recall == 0.25  # only the cheapest stays on the front
    assert pq.choose([same, reversed_]) is same
    assert math.isnan(same.tau_clean)  # no prior rows: nothing to tell flagged runs by

    # with each budget's prior row, a run worse than it on depth is left out of τ without flagged runs
    priors = [{"budget": b, "arch": "prior", "status": "prior", "depth_rmse": "0.8", "delta_m": ""} for b in ("long", "proxy")]
    depth = lambda rs, values: [dict(r, depth_rmse=str(v)) for r, v in zip(rs, values)]  # noqa: E731
    table = priors + depth(long, [0.5, 0.6, 0.7, 0.6]) + depth(rows("proxy", [-1, -3, -2, 0]), [1.5, 0.6, 0.6, 0.6])
    assert pq.flagged(table) == {("proxy", "a0"): ["depth"]}
    mixed = pq.quality(table, "proxy", boot=50)
    assert mixed.n_clean == 3 and mixed.tau_clean == pytest.approx(1.0) and mixed.tau < 1.0


def test_claims_exclude_a_second_holder(pq, tmp_path) -> None:
    lock = tmp_path / "x.lock"
    with pq.claim(lock) as first:
        with pq.claim(lock) as second:
            assert first and not second
    with pq.claim(lock) as again:
        assert again


def test_architectures_are_stratified_and_reproducible(pq) -> None:
    archs = pq.architectures(12, 0)
    assert list(archs)[:4] == list(pq.PRESETS) and len({a.id for a in archs.values()}) == 12
    sampled = list(archs.values())[4:]
    assert {a.width for a in sampled} == set(pq.WIDTHS)
    assert {a.decoder.sharing for a in sampled} == set(pq.SHARINGS)
    assert {pq.binarized(a) for a in sampled} & {0, 1} and max(pq.binarized(a) for a in sampled) >= 6
    assert {a.id for a in pq.architectures(12, 0).values()} == {a.id for a in archs.values()}
