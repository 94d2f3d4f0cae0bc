"""`netsim sweep --scheduler` on a real dask cluster: a ``dask scheduler`` and two ``dask worker``
processes on 127.0.0.1 (random free ports), started in a folder of their own, so that a run
written by a worker instead of the client would land in the wrong place."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from netsim.cli import app
from netsim.sweep import NoWorkersError, RunTask, expand, load_sweep, run_sweep
from tests.netsim.test_sweep_cli import tiny_scenario

ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).with_name("dask")
START_WAIT_S = 60.0


@dataclass
class Cluster:
    address: str
    folder: Path
    workers: list[subprocess.Popen]


def slow_runner(task: RunTask, out_dir: Path) -> None:
    """A run that takes a minute (picklable; the workers import this module)."""
    time.sleep(60)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A scheduler and two single-threaded workers, without nannies (a killed worker stays
    dead), in ``tmp_path/cluster``; always killed afterwards."""
    folder = tmp_path / "cluster"
    folder.mkdir()
    scheduler_file = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    common = {"cwd": folder, "env": env, "start_new_session": True}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
            + ["--scheduler-file", str(scheduler_file)],
            **common,
            **quiet,
        )
    ]
    try:
        deadline = time.monotonic() + START_WAIT_S
        while not scheduler_file.is_file():
            assert processes[0].poll() is None, "dask scheduler ended"
            assert time.monotonic() < deadline, "dask scheduler did not start in time"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
                    + ["--host", "127.0.0.1", "--local-directory", str(folder)],
                    **common,
                    **quiet,
                )
            )
        from distributed import Client

        with Client(address, timeout=START_WAIT_S) as client:
            client.wait_for_workers(2, timeout=START_WAIT_S)
        yield Cluster(address, folder, processes[1:])
    finally:
        for process in reversed(processes):
            _stop(process)


def test_a_sweep_on_a_cluster_writes_resumes_and_stops_without_workers(
    tmp_path: Path, cluster: Cluster
) -> None:
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    sweep = {
        "base": tiny_scenario(sweeps).name,
        "grid": {"network.forward.loss.loss_rate": [0.2, 0.8]},
        "seeds": [0],
        "frames": 3,
        "out_dir": "out",  # relative to the sweep file, not to anyone's working directory
    }
    path = sweeps / "tiny.yaml"
    path.write_text(yaml.safe_dump(sweep))
    spec = load_sweep(path)
    tasks = expand(spec)
    command = ["sweep", str(path), "--scheduler", cluster.address]

    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    assert "ran 2, skipped 0 finished, failed 0" in first.output
    assert all(task.finished and task.out_dir.parent == sweeps / "out" for task in tasks)
    assert not list(cluster.folder.rglob("summary.json")), "a worker kept results of its own"
    table = pd.read_csv(sweeps / "out" / "sweep_table.csv")
    assert table["run"].tolist() == [task.run_id for task in tasks]
    assert (table["frames"] == 3).all()

    shutil.rmtree(tasks[1].out_dir)
    second = CliRunner().invoke(app, command)
    assert second.exit_code == 0, second.output
    assert "ran 1, skipped 1 finished, failed 0" in second.output
    table = pd.read_csv(sweeps / "out" / "sweep_table.csv")
    assert table["run"].tolist() == [task.run_id for task in tasks]

    shutil.rmtree(tasks[0].out_dir)
    killer = threading.Timer(3.0, lambda: [_stop(worker) for worker in cluster.workers])
    killer.start()
    try:
        with pytest.raises(NoWorkersError, match="every worker left and none came back within 2 s"):
            run_sweep(spec, scheduler=cluster.address, runner=slow_runner, worker_wait_s=2.0)
    finally:
        killer.join()
    assert tasks[1].finished and not tasks[0].finished  # the finished run is kept

    third = CliRunner().invoke(app, [*command, "--worker-wait", "2"])
    assert third.exit_code == 2
    errors = [line for line in third.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: scheduler {cluster.address}: no worker joined within 2 s; 1 runs not run, "
        "finished runs are kept"
    ]
    assert "Traceback" not in third.output and "distributed." not in third.output
    assert tasks[1].finished
