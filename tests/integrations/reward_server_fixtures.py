"""``secreason reward-server`` as a real subprocess on a free loopback port.

Shared by the reward-server tests (the OpenRLHF client's view and the hostile review):
one way to start it, wait for ``/health``, read its log and stop it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))
from openai_fixture_server import end_process, free_port, wait_ready  # noqa: E402


class RewardServer:
    """``secreason reward-server --port P --api-key KEY *ARGS``, ready once constructed.

    Keys from the environment (``SECREASON_API_KEYS``) are not passed on: only ``key``
    is accepted. Output goes to a log file under ``workdir``.
    """

    def __init__(self, workdir: Path, key: str, *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"reward-{self.port}.log"
        cli = Path(sys.executable).with_name("secreason")
        command = [str(cli), "reward-server", "--port", str(self.port), "--api-key", key, *args]
        env = {k: v for k, v in os.environ.items() if k != "SECREASON_API_KEYS"}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_ready(
                self.proc,
                self.base + "/health",
                name="reward-server",
                output=self.log,
                timeout_s=90,
            )
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        """The end of what the server wrote."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Terminate it (then kill); nothing to do once it has exited."""
        if self.proc.poll() is None:
            end_process(self.proc)
