"""`yunying records ...` as a process: a collection killed with SIGKILL mid-run resumes from its
last commit, and every row is applied exactly once (issue 15: "a killed collector resumes")."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

import yunying.records.schema as t
from benchmarks.net import REPO_ROOT
from tests.records.test_sql_collector import MAPPING, hospital_db

N = 3000


def cli(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "yunying.cli", "records", *args, "--config", str(config)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_killed_run_resumes_without_duplicates(tmp_path: Path) -> None:
    his = f"sqlite:///{tmp_path / 'his.sqlite'}"
    hospital_db(his, 0)
    engine = create_engine(his)
    with engine.begin() as conn:  # N exams, bulk
        conn.execute(text("INSERT INTO his_exams (exam_no, pat_id, pat_name, modality, updated_at) VALUES "
                          "(:e, :p, '王五', 'DX', :u)"),
                     [{"e": f"K{i:06d}", "p": f"P{i % 500}", "u": datetime(2026, 1, 1) + timedelta(seconds=i)}
                      for i in range(N)])
    engine.dispose()
    (tmp_path / "sources.toml").write_text(MAPPING.format(url=his, batch=25), encoding="utf-8")
    config = tmp_path / "yunying.toml"
    config.write_text(f'data = "{tmp_path / "data"}"\nrecords_sources = "{tmp_path / "sources.toml"}"\n')
    app = create_engine(f"sqlite:///{tmp_path / 'data' / 'app.sqlite'}")

    def applied() -> int:
        try:
            with app.connect() as conn:
                return int(conn.execute(select(func.coalesce(func.sum(t.cursors.c.rows), 0))).scalar_one())
        except Exception:  # noqa: BLE001 - the first run has not created the tables yet
            return 0

    proc = cli(config, "run", "ris")
    deadline = time.monotonic() + 120
    while applied() < 100 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: make N larger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = applied()
    assert 0 < first < N
    done = cli(config, "run", "ris")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err.decode()
    assert f"{N - first} row(s) applied" in out.decode()
    with app.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.exams)).scalar_one() == N
        assert applied() == N  # counted in the same transaction as the rows: each row once
    status = cli(config, "status")
    (job, *_) = json.loads(status.communicate(timeout=120)[0])
    assert job["name"] == "ris" and job["counts"]["rows_total"] == N and job["state"] == "idle"
    app.dispose()
