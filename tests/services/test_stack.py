import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_prl_up_serves_and_ctrl_c_leaves_no_orphans(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "up",
            "--workdir",
            str(tmp_path),
            "--services",
            "reward,leaderboard",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "prl up exited early:\n" + "".join(lines)
            lines.append(line)
            if line.startswith("ready"):
                break
        out = "".join(lines)
        pids = [int(p) for p in re.findall(r"pid=(\d+)", out)]
        urls = dict(re.findall(r"^(\w+)\s+(http://\S+)$", out, re.M))
        assert set(urls) == {"reward", "leaderboard"} and len(pids) == 2
        for url in urls.values():
            assert httpx.get(url + "/readyz", timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        time.sleep(0.5)
        assert not [p for p in pids if _alive(p)], "service processes outlived prl up"
    finally:
        if proc.poll() is None:
            proc.kill()
