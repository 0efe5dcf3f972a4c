"""`vaelab serve` on the command line: its one URL line, --open, Ctrl-C, and the mistakes
a user can make (a wrong directory, a port in use), each one line and exit status 2."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
import torch

from helpers import assert_one_line_error
from vaelab.cli import main


def test_a_missing_or_wrong_run_directory_is_one_line(tmp_path, capsys):
    assert_one_line_error(capsys, ["serve", str(tmp_path / "nope")], "run directory not found")
    assert_one_line_error(capsys, ["serve", str(tmp_path)], "not a vaelab run directory")


def test_a_port_in_use_is_one_line_before_the_run_is_loaded(trained_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(capsys, ["serve", str(trained_run), "--port", str(port)],
                              f"port {port} on 127.0.0.1 is in use", "--port")


@pytest.mark.parametrize("flags, fragment", [(["--port", "70000"], "--port must be in"),
                                             (["--threads", "0"], "--threads must be > 0"),
                                             (["--checkpoint", "middle"], "invalid choice")])
def test_bad_flags_are_one_line(trained_run, capsys, flags, fragment):
    assert_one_line_error(capsys, ["serve", str(trained_run), *flags], fragment)


def test_the_url_is_printed_on_one_line_and_open_opens_it(trained_run, capsys, monkeypatch):
    """With the server itself stubbed out: what serve prints, and what --open does."""
    from vaelab.app import server

    served, opened = [], []

    class Stub:
        def run(self, sockets):
            served.append(sockets[0].getsockname())
            assert torch.get_num_threads() == 1  # --threads 1 while serving

    monkeypatch.setattr(server, "uvicorn_server", lambda explorer: Stub())
    monkeypatch.setattr(server.webbrowser, "open", opened.append)
    threads = torch.get_num_threads()
    assert main(["serve", str(trained_run), "--port", "0", "--open"]) == 0
    lines = capsys.readouterr().out.splitlines()
    url = f"http://127.0.0.1:{served[0][1]}/"
    assert [line for line in lines if "http://" in line] == [
        f"vaelab explorer of {trained_run} at {url} (Ctrl-C stops it)"]
    assert opened == [url] and torch.get_num_threads() == threads


@pytest.mark.skipif(os.name == "nt", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_stops_the_server_cleanly(trained_run):
    """The real command in its own process: it answers, then Ctrl-C ends it with status 0
    and no traceback."""
    server = subprocess.Popen([sys.executable, "-m", "vaelab", "serve", str(trained_run),
                               "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        url = re.search(r"http://\S+/", line).group(0)
        with urllib.request.urlopen(url + "api/info", timeout=30) as answer:
            assert json.load(answer)["latent_dim"] == 4
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert "Traceback" not in err and "stopped" in out
