"""The benchmarks' lock-step timing (``benchmarks/_common.run_paired``): every contender in a
process of its own, all alive at once, one block each per round, rounds aligned."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

SCRIPT = """
import json, os, sys, time
sys.path.insert(0, {benchmarks!r})
import _common
_common.SETTLE_SECONDS, _common.WAKE_SECONDS = 0.01, 0.001

def _log(name):  # one line per process that builds a contender: its name, whether priming
    if os.environ.get("LOG"):
        with open(os.environ["LOG"], "a") as f:
            f.write(f"{{name}} {{os.environ.get('FUNDL_BENCH_PRIME', '0')}}\\n")

def slow():
    _log("slow")
    return lambda: time.sleep(0.002)

def fast():
    _log("fast")
    return lambda: None

def broken():
    raise ValueError("no such model")

builders = {{"slow": slow, "fast": fast}}
if os.environ.get("WITH_BROKEN"):
    builders["broken"] = broken
times, peaks, samples = _common.run_paired(builders, number={{"slow": 3, "fast": 50}}, rounds=4,
                                           warmup=1, processes=2)
print("RESULT " + json.dumps({{"times": times, "peaks": peaks, "samples": samples,
                              "ratio": _common.paired_ratio(samples, "fast", "slow")}}))
"""


def _run(tmp_path, **env):
    script = tmp_path / "bench_toy.py"
    script.write_text(SCRIPT.format(benchmarks=str(BENCHMARKS)))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_run_paired_times_each_contender_in_its_own_process_round_by_round(tmp_path):
    out = _run(tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(next(line for line in out.stdout.splitlines()
                             if line.startswith("RESULT "))[len("RESULT "):])
    samples = result["samples"]
    assert sorted(samples) == ["fast", "slow"]
    assert len(samples["slow"]) == len(samples["fast"]) == 8  # 4 rounds x 2 processes
    assert all(t >= 0.002 for t in samples["slow"])  # seconds per call, each block its own
    assert all(t < 0.002 for t in samples["fast"])
    assert result["times"]["slow"] >= 0.002
    assert all(p > 0 for p in result["peaks"].values())  # each process's own peak memory
    ratio, rounds = result["ratio"].split(" ", 1)
    assert float(ratio) < 1 and rounds.startswith("(rounds ")


def test_run_paired_primes_each_contender_once_before_the_timed_processes(tmp_path):
    """Each contender is first built in a priming process (kernels compile there, untimed),
    then in one process per set; the priming processes come first and time nothing."""
    log = tmp_path / "built.log"
    out = _run(tmp_path, LOG=str(log))
    assert out.returncode == 0, out.stderr
    lines = log.read_text().split()
    built = list(zip(lines[::2], lines[1::2]))
    assert built[:2] == [("slow", "1"), ("fast", "1")]
    assert sorted(built[2:]) == [("fast", "0")] * 2 + [("slow", "0")] * 2


def test_run_paired_reports_a_contender_that_fails_to_start(tmp_path):
    out = _run(tmp_path, WITH_BROKEN="1")
    assert out.returncode != 0
    assert "benchmark process for 'broken' failed" in out.stderr
    assert "no such model" in out.stderr  # the child's own traceback, passed on


@pytest.mark.parametrize("name", ["bench_rnn.py", "bench_cnn.py", "bench_mlp_fit.py"])
def test_paired_benchmarks_are_runnable_scripts(name):
    """--help parses without timing anything (and without PyTorch)."""
    out = subprocess.run([sys.executable, str(BENCHMARKS / name), "--help"], capture_output=True,
                         text=True, timeout=120, cwd=BENCHMARKS)
    assert out.returncode == 0, out.stderr
    assert "--rounds" in out.stdout
