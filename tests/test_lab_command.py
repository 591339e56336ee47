"""`make lab` serves on 127.0.0.1 with token authentication on (read from `make -n lab`, then started briefly)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from lab_driver import NOTEBOOKS, ROOT, free_port, jupyter_env, port_is_free

# arguments (as the shell passes them) that would switch authentication off or open the server to other hosts
FORBIDDEN = [
    r"--(ServerApp|IdentityProvider|NotebookApp)\.(token|password)=",  # empty: no authentication
    r"--NotebookApp\..*",  # the classic notebook's options: ignored, or a token off by mistake
    r"--(ServerApp\.)?ip=(0\.0\.0\.0|\*|::|)",
    r".*allow_remote_access.*",
    r".*disable_check_xsrf.*",
    r"--no-?token",
]


def lab_command() -> list[str]:
    """The `jupyter lab` command line that `make lab` runs (setup commands dropped)."""
    out = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if re.search(r"\bjupyter(-lab| lab)\b", line)]
    assert len(lines) == 1, f"expected one `jupyter lab` line in `make -n lab`:\n{out}"
    return shlex.split(lines[0])


def lab_problems(cmd: list[str]) -> list[str]:
    """Why a `jupyter lab` command line is not private (empty when it binds 127.0.0.1 with a token)."""
    problems = [] if "--ServerApp.ip=127.0.0.1" in cmd else ["no --ServerApp.ip=127.0.0.1"]
    problems += [f"{arg!r} matches {pattern!r}" for arg in cmd for pattern in FORBIDDEN if re.fullmatch(pattern, arg)]
    return problems


def test_make_lab_binds_localhost_and_keeps_token_authentication():
    cmd = lab_command()
    assert lab_problems(cmd) == [], shlex.join(cmd)
    assert "--notebook-dir=notebooks" in cmd or "--ServerApp.root_dir=notebooks" in cmd, shlex.join(cmd)


@pytest.mark.parametrize(
    "extra",
    [
        ["--ServerApp.token="],
        ["--IdentityProvider.token="],
        ["--NotebookApp.token=x"],
        ["--ip=0.0.0.0"],
        ["--ServerApp.password="],
        ["--ServerApp.allow_remote_access=True"],
    ],
)
def test_the_check_rejects_open_servers(extra):
    assert lab_problems(["jupyter", "lab", "--ServerApp.ip=127.0.0.1", *extra])
    assert lab_problems(["jupyter", "lab", "--ServerApp.ip=0.0.0.0"])


def _get(url: str, token: str = "") -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.slow
def test_make_lab_command_answers_403_without_the_token(tmp_path):
    """Start `make lab`'s own command line (on a free port, private dirs, a copy of notebooks/)."""
    cmd = lab_command()
    cmd[0] = str(Path(sys.executable).with_name(Path(cmd[0]).name))  # this venv's jupyter
    port = free_port()
    cmd += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--no-browser"]
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks")  # --notebook-dir=notebooks, relative to cwd
    env = jupyter_env(tmp_path / "jupyter")
    runtime = Path(env["JUPYTER_RUNTIME_DIR"])
    log = open(tmp_path / "lab.log", "wb")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, info = time.monotonic() + 90, None
        while time.monotonic() < deadline and info is None:
            assert proc.poll() is None, (tmp_path / "lab.log").read_text()
            files = list(runtime.glob("jpserver-*.json"))
            if files:
                try:
                    info = json.loads(files[0].read_text())
                except json.JSONDecodeError:
                    pass  # being written
            time.sleep(0.3)
        assert info is not None, "the server wrote no jpserver-*.json: " + (tmp_path / "lab.log").read_text()[-3000:]
        assert info["port"] == port and info["token"], info
        url = f"http://127.0.0.1:{port}/api/contents"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status = _get(url, info["token"])
                break
            except OSError:
                time.sleep(0.3)
        assert status == 200
        assert _get(url) == 403
        assert _get(url, "not-the-token") == 403
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/shutdown",
            method="POST",
            data=b"",
            headers={"Authorization": f"token {info['token']}"},
        )
        urllib.request.urlopen(req, timeout=10).close()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        log.close()
    assert port_is_free(port)
