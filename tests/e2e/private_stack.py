"""A whole stack of its own, launched by `photos-stack` exactly as `make up` launches one, for tests that
kill its processes: Cassandra, Kafka, Redis, the API and a stream worker on ports and in a directory
no other test uses, each under its photos-stack supervisor.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from app.settings import REPO_ROOT, Settings
from infra.procs import free_port, tail
from infra.services import Service, build_services
from tests.e2e.processes import GENEROUS_LIMITS

PHOTOS_STACK = Path(sys.executable).parent / "photos-stack"
UP_TIMEOUT_S = 300


class PrivateStack:
    def __init__(self, name: str, **settings: str) -> None:
        self.dir = REPO_ROOT / ".stack" / f"test-{name}"
        redis_port = free_port()
        self.env = {
            **GENEROUS_LIMITS,
            "PHOTOS_STACK_DIR": str(self.dir),
            "PHOTOS_MEDIA_DIR": str(self.dir / "media"),
            "PHOTOS_CASSANDRA_KEYSPACE": f"photos_{name}",
            "PHOTOS_CASSANDRA_PORT": str(free_port()),
            "PHOTOS_CASSANDRA_STORAGE_PORT": str(free_port()),
            "PHOTOS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
            "PHOTOS_KAFKA_CONTROLLER_PORT": str(free_port()),
            "PHOTOS_KAFKA_TOPIC_PREFIX": "photos.",
            "PHOTOS_STREAMS_APP_ID": "photos-streams",
            "PHOTOS_REDIS_PORT": str(redis_port),
            "PHOTOS_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "PHOTOS_API_PORT": str(free_port()),
            # photos-stack and the services it starts run this checkout's code, not the installed one's
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            "PHOTOS_OPS_PORT": str(free_port()),
            **settings,
        }
        self.settings = Settings.from_env({**os.environ, **self.env})

    @property
    def api_url(self) -> str:
        return self.settings.public_url

    @property
    def ops_url(self) -> str:
        """The API's ops listener: /metrics and the detailed /readyz."""
        return f"http://{self.settings.ops_host}:{self.settings.ops_port}"

    def photos_stack(self, *args: str, timeout: float = UP_TIMEOUT_S) -> str:
        """Run photos-stack on this stack; its output, or AssertionError with it when it fails."""
        result = subprocess.run(
            [str(PHOTOS_STACK), *args], env={**os.environ, **self.env}, capture_output=True, text=True,
            timeout=timeout,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"photos-stack {' '.join(args)} failed:\n{output}"
        return output

    def up(self, *args: str, timeout: float = UP_TIMEOUT_S) -> str:
        """`photos-stack up ARGS` on a fresh directory; its output."""
        if self.dir.exists():  # an earlier run that was itself killed may have left its stack running
            self.photos_stack("down")
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.photos_stack("up", *args, timeout=timeout)

    def down(self) -> None:
        self.photos_stack("down")

    def service(self, name: str) -> Service:
        return build_services(self.settings, [name])[0]

    def pid(self, name: str) -> int | None:
        """The service's own process (not its supervisor)."""
        return self.service(name).service_pid()

    def restarts(self, name: str) -> int:
        return self.service(name).supervisor_state().get("restarts", 0)

    def kill(self, name: str) -> int:
        """SIGKILL the service's process (its supervisor restarts it); returns the pid killed."""
        pid = self.pid(name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        return pid

    async def until_api_ready(self, http, timeout: float = 60, in_a_row: int = 8) -> None:
        """Wait until every API process answers /readyz with 200 (it reaches Cassandra again): the API runs one
        process per core on one port, and each new connection may reach any of them, so `in_a_row` answers in
        a row, each on a new connection, must be 200 (`http` is not used: it keeps its connections)."""
        end = time.monotonic() + timeout
        ready = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
            while ready < in_a_row:
                try:
                    async with fresh.get(f"{self.api_url}/readyz") as response:
                        ready = ready + 1 if response.status == 200 else 0
                except (OSError, aiohttp.ClientError):
                    ready = 0
                assert time.monotonic() < end, f"the API was not ready within {timeout:.0f} s"
                if ready == 0:
                    await asyncio.sleep(0.2)

    async def until_back(self, name: str, killed_pid: int, timeout: float = 120) -> int:
        """Wait until the supervisor has restarted `name` and it answers again; returns its new pid."""
        service = self.service(name)
        end = time.monotonic() + timeout
        while (pid := service.service_pid()) in (None, killed_pid) or not await service.answers():
            if time.monotonic() > end:
                logs = "\n".join(f"--- {log} ---\n{tail(log, 30)}" for log in service.log_files)
                raise AssertionError(f"{name} did not come back within {timeout:.0f} s; supervisor: "
                                     f"{service.supervisor_state()}\n{logs}")
            await asyncio.sleep(0.2)
        return pid
