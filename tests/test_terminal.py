"""Terminal behaviour: colour and progress only on a TTY, never with NO_COLOR."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

ESC = "\x1b["


def run_on_tty(sim_url: str, extra_env: dict) -> str:
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR" and not k.lower().endswith("_proxy")}
    env.update(extra_env)
    proc = subprocess.Popen([sys.executable, "-m", "midoctor", "run", "--imds-url", sim_url, "--arm-url", sim_url,
                             "--only", "imds-reachable", "--only", "identity-attached"],
                            stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    chunks = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(controller)
    return b"".join(chunks).decode("utf-8", "replace")


def test_colour_on_a_tty(simulator) -> None:
    out = run_on_tty(simulator("no-identity").url, {})
    assert ESC in out and "DIAGNOSIS" in out


def test_no_color_disables_colour_even_on_a_tty(simulator) -> None:
    out = run_on_tty(simulator("no-identity").url, {"NO_COLOR": "1"})
    body = out.replace("\r\x1b[K", "")  # the progress line is cleared with an erase sequence, not colour
    assert "\x1b[3" not in body and "\x1b[1;3" not in body and "\x1b[9" not in body
    assert "DIAGNOSIS" in body


def test_no_colour_when_piped(simulator) -> None:
    sim = simulator("no-identity")
    done = subprocess.run([sys.executable, "-m", "midoctor", "run", "--imds-url", sim.url, "--arm-url", sim.url,
                           "--only", "imds-reachable"], capture_output=True, text=True, timeout=30)
    assert ESC not in done.stdout and ESC not in done.stderr
