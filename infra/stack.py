"""photos-stack: run the whole system on this machine, without Docker.

    photos-stack up     [--services cassandra,kafka,redis,api,streams]
    photos-stack status
    photos-stack down   [--services ...]
    photos-stack wipe
    photos-stack fetch  [--services ...]

`up` fetches what is missing, starts the three servers concurrently, waits until each
answers a real request, runs `photos-migrate`, then starts `photos-api` and
`photos-streams`. Services run detached and survive the launcher, each under a supervisor
(infra/supervise.py) that restarts it with back-off when it crashes or is killed; data, logs,
configs and pid files live under settings.stack_dir, downloaded jars under settings.cache_dir.
Running `up` again leaves healthy services alone, starts stopped ones, and restarts a server
whose configuration the settings have changed (or one running without a supervisor).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from app.settings import Settings
from infra import StackError
from infra.fetch import fetch
from infra.probes import tcp_accepts
from infra.procs import (
    exclusive_lock,
    file_size,
    group_alive,
    process_alive,
    signal_group,
    spawn_detached,
    tail,
    write_pid,
)
from infra.services import SERVER_NAMES, SERVICE_NAMES, Server, Service, build_services, project_script

POLL_INTERVAL_S = 0.25
KILL_GRACE_S = 5.0
MIGRATE_TIMEOUT_S = 300.0


# --- fetch -------------------------------------------------------------------------


def fetch_for(settings: Settings, services: list[Service]) -> None:
    """Install the programs and download the jars the selected servers need."""
    servers = [service for service in services if isinstance(service, Server)]
    programs = {program: package for server in servers for program, package in server.apt_programs.items()}
    bundles = [server.jar_bundle for server in servers if server.jar_bundle is not None]
    fetch(programs, bundles, settings.java_home)


# --- up ----------------------------------------------------------------------------


async def start_all(services: list[Service]) -> list[StackError]:
    """Start the services concurrently and wait for each to answer; return the failures."""
    results = await asyncio.gather(*(start(service) for service in services), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, StackError):
            raise result
    return [result for result in results if isinstance(result, StackError)]


async def start(service: Service) -> None:
    """Make `service` run and answer: leave it alone if it does, (re)start it if it does not."""
    reason = service.missing_reason()
    if reason:
        print(f"{service.name:<9} skipped: {reason}")
        return
    began = time.monotonic()
    pid = service.running_pid()
    restart_because = None
    if pid is not None and service.config_changed():
        restart_because = "its configuration changed"
    stray = service.unsupervised_pid()
    if stray is not None:
        pid, restart_because = stray, "it was running without a supervisor"
    if restart_because:
        print(f"{service.name:<9} restarting: {restart_because}")
        await asyncio.to_thread(stop_all, [service], {service: pid})
        pid = None
    # Where each log ends before this start, so that a failure shows only what this run wrote.
    log_marks = {log: file_size(log) for log in service.log_files}
    if pid is None:
        pid = await launch(service)
        try:
            await wait_until_answering(service, pid, began + service.ready_timeout_s, log_marks, first_run=True)
        except StackError:  # reported, not retried in the background: the supervisor goes too
            await asyncio.to_thread(stop_all, [service], {service: pid}, quiet=True)
            raise
        outcome = "ready in {:5.1f} s"
    else:
        await wait_until_answering(service, pid, began + service.ready_timeout_s, log_marks)
        outcome = "running, answered in {:.1f} s"
    await service.provision()  # e.g. the app's role on a Cassandra with authentication (PHOTOS_STACK_AUTH)
    ports = ",".join(map(str, service.ports)) or "-"
    print(f"{service.name:<9} {outcome.format(time.monotonic() - began)}  pid {service.service_pid() or pid}  "
          f"port {ports}")


async def launch(service: Service) -> int:
    """Start `service` under its supervisor; returns the supervisor's pid."""
    service.pid_file.unlink(missing_ok=True)  # stale: its process is gone
    service.state_file.unlink(missing_ok=True)
    for port in service.ports:
        if await tcp_accepts(service.host, port):
            raise StackError(
                f"{service.name}: port {port} is taken by a process photos-stack did not start"
                " (another stack, or a system service); stop it or change the PHOTOS_* port setting"
            )
    argv = await asyncio.to_thread(service.prepare)
    env = {**service.environment(), **os.environ}
    pid = spawn_detached(service.supervised_command(argv), service.console_log, service.workdir, env)
    write_pid(service.pid_file, pid)
    return pid


async def wait_until_answering(
    service: Service, pid: int, deadline: float, log_marks: dict[Path, int], first_run: bool = False
) -> None:
    """Wait until `service` answers. On its `first_run`, fail as soon as that run ends: the supervisor
    would retry it, but a service that cannot start is reported, not retried quietly."""
    while not await service.answers():
        if not process_alive(pid) or (first_run and service.supervisor_state().get("restarts", 0) > 0):
            raise StackError(failure_report(service, "exited during start-up", log_marks))
        if time.monotonic() > deadline:
            problem = f"did not answer within {service.ready_timeout_s:.0f} s"
            raise StackError(failure_report(service, problem, log_marks))
        await asyncio.sleep(POLL_INTERVAL_S)


def failure_report(service: Service, problem: str, log_marks: dict[Path, int]) -> str:
    """`problem` plus the last lines each log received since `log_marks`."""
    report = [f"{service.name} {problem}; see {service.log_files[0]}"]
    for log in service.log_files:
        lines = tail(log, since=log_marks.get(log, 0)).rstrip()
        if lines:
            report.append(f"--- last lines of {log} ---\n{lines}")
    return "\n".join(report)


def run_migrations(settings: Settings) -> None:
    """Run `photos-migrate` in the foreground; its output goes to <stack_dir>/logs/migrate.log."""
    script = project_script("photos-migrate")
    if not script.exists():
        print(f"migrate   skipped: {script.name} is not installed in {script.parent}")
        return
    log = Path(settings.stack_dir) / "logs" / "migrate.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with log.open("w") as output:
        try:
            result = subprocess.run([str(script)], stdout=output, stderr=subprocess.STDOUT, timeout=MIGRATE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise StackError(f"photos-migrate ran longer than {MIGRATE_TIMEOUT_S:.0f} s; see {log}") from None
    if result.returncode != 0:
        raise StackError(f"photos-migrate failed (exit {result.returncode}); see {log}\n{tail(log).rstrip()}")
    print(f"migrate   done in {time.monotonic() - began:5.1f} s")


def cmd_up(settings: Settings, names: list[str]) -> int:
    services = build_services(settings, names)
    fetch_for(settings, services)
    began = time.monotonic()
    servers = [service for service in services if service.is_server]
    apps = [service for service in services if not service.is_server]
    failures = asyncio.run(start_all(servers))
    if servers and not failures:
        print(f"servers   ready in {time.monotonic() - began:5.1f} s")
    # The schema belongs with a complete set of servers, and the apps need it.
    if not failures and (apps or SERVER_NAMES <= set(names)):
        run_migrations(settings)
        failures = asyncio.run(start_all(apps))
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if failures:
        return 1
    print(f"stack     ready in {time.monotonic() - began:5.1f} s")
    return 0


# --- status ------------------------------------------------------------------------


async def describe(service: Service) -> tuple[str, bool]:
    """One status line for `service`, and whether it is running and answering."""
    supervisor = service.running_pid()
    pid = service.service_pid()
    stray = service.unsupervised_pid()
    answering = await service.answers()
    supervisor_state = service.supervisor_state()
    if supervisor is None:
        state = "running" if stray is not None else "stopped"
    elif pid is None:
        state = "restarting"
    else:
        state = "running"
    ports = ",".join(map(str, service.ports)) or "-"
    line = f"{service.name:<9} {state:<10} pid {pid or stray or '-':<7} port {ports:<10} "
    line += "answering" if answering else "not answering"
    if supervisor is not None:
        line += restart_note(supervisor_state)
    elif stray is not None:
        line += " (unsupervised: `photos-stack up` restarts it under a supervisor)"
    elif answering:
        line += " (but not started by photos-stack)"
    reason = service.missing_reason()
    if reason:
        line += f" ({reason})"
    return line, (supervisor is not None or stray is not None) and answering


def restart_note(state: dict, now: float | None = None) -> str:
    """", restarted 2 times, last killed by SIGKILL 40 s ago": what the supervisor has done ("" if nothing)."""
    restarts = state.get("restarts", 0)
    last = state.get("last_exit")
    if not restarts or not last:
        return ""
    now = time.time() if now is None else now
    note = f", restarted {restarts} time{'s' if restarts != 1 else ''}, last {last['how']} {ago(now - last['at'])}"
    next_start = state.get("next_start_at")
    if state.get("state") == "waiting" and next_start:
        note += f", next start in {max(0.0, next_start - now):.0f} s"
    return note


def ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


async def describe_all(services: list[Service]) -> list[tuple[str, bool]]:
    return await asyncio.gather(*(describe(service) for service in services))


def cmd_status(settings: Settings, names: list[str]) -> int:
    services = build_services(settings, names)
    healthy = True
    for service, (line, up) in zip(services, asyncio.run(describe_all(services)), strict=True):
        print(line)
        healthy &= up or not service.is_server
    return 0 if healthy else 1


# --- down / wipe -------------------------------------------------------------------


def stop_all(services: list[Service], groups: dict[Service, int] | None = None, quiet: bool = False) -> None:
    """SIGTERM every running service at once, then wait for each; SIGKILL the late ones.

    A service's process group is its supervisor's (found from the pid file), or `groups[service]`."""
    say = (lambda line: None) if quiet else print
    running: dict[Service, int] = {}
    for service in services:
        pid = (groups or {}).get(service) or service.running_pid() or service.unsupervised_pid()
        if pid is None:
            say(f"{service.name:<9} not running")
        else:
            running[service] = pid
            signal_group(pid, signal.SIGTERM)
    began = time.monotonic()
    while running:
        time.sleep(POLL_INTERVAL_S)
        for service, pid in list(running.items()):
            if not group_alive(pid):
                say(f"{service.name:<9} stopped in {time.monotonic() - began:5.1f} s")
                del running[service]
            elif time.monotonic() > began + service.stop_timeout_s:
                signal_group(pid, signal.SIGKILL)
                deadline = time.monotonic() + KILL_GRACE_S
                while group_alive(pid) and time.monotonic() < deadline:
                    time.sleep(POLL_INTERVAL_S)
                say(f"{service.name:<9} killed: still running {service.stop_timeout_s:.0f} s after SIGTERM")
                del running[service]
    for service in services:
        service.pid_file.unlink(missing_ok=True)


def cmd_down(settings: Settings, names: list[str]) -> int:
    services = build_services(settings, names)
    # The apps first, so that they do not spend their last seconds failing to reach a server.
    stop_all([service for service in services if not service.is_server])
    stop_all([service for service in services if service.is_server])
    return 0


def cmd_wipe(settings: Settings, names: list[str]) -> int:
    """Stop everything and delete the stack dir: data, logs, configs (not the jar cache)."""
    cmd_down(settings, list(SERVICE_NAMES))
    stack_dir = Path(settings.stack_dir)
    cache_dir = Path(settings.cache_dir)
    if not stack_dir.exists():
        return 0
    for entry in stack_dir.iterdir():
        if cache_dir.is_relative_to(entry):
            continue  # someone put the jar cache inside the stack dir: keep it
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    print(f"wiped     {stack_dir}")
    return 0


def cmd_fetch(settings: Settings, names: list[str]) -> int:
    fetch_for(settings, build_services(settings, names))
    print("fetch     everything is in place")
    return 0


# --- command line ------------------------------------------------------------------

COMMANDS: dict[str, Callable[[Settings, list[str]], int]] = {
    "up": cmd_up,
    "status": cmd_status,
    "down": cmd_down,
    "wipe": cmd_wipe,
    "fetch": cmd_fetch,
}
COMMANDS_WITH_SERVICES = ("up", "down", "fetch")
# Two of these at once could start a server twice on the same data dir: they take turns.
COMMANDS_THAT_CHANGE_STATE = ("up", "down", "wipe")

COMMAND_HELP = {
    "up": "start the services (fetching what is missing) and wait until they answer",
    "status": "show each service; exit 1 if Cassandra, Kafka or Redis is not answering",
    "down": "stop the services (SIGTERM, then SIGKILL after a grace period)",
    "wipe": "stop everything and delete all data, logs and configs (keeps downloaded jars)",
    "fetch": "download the jars and install the programs that are missing",
}


def service_list(text: str) -> list[str]:
    """argparse type for --services: comma-separated names of known services."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVICE_NAMES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown service {', '.join(unknown) or '(none)'}; choose from {','.join(SERVICE_NAMES)}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="photos-stack",
        description="Run Cassandra, Kafka, Redis, the API and the stream processor locally.",
    )
    parser.set_defaults(services=list(SERVICE_NAMES))
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        sub = commands.add_parser(name, help=COMMAND_HELP[name])
        if name in COMMANDS_WITH_SERVICES:
            sub.add_argument(
                "--services",
                type=service_list,
                default=list(SERVICE_NAMES),
                help=f"comma-separated subset of {','.join(SERVICE_NAMES)} (default: all)",
            )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # progress lines show up at once, even piped
    args = parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as error:  # a PHOTOS_* variable that does not parse
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if args.command not in COMMANDS_THAT_CHANGE_STATE:
            return COMMANDS[args.command](settings, args.services)
        with exclusive_lock(Path(settings.stack_dir) / "run" / "photos-stack.lock"):
            return COMMANDS[args.command](settings, args.services)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Services already started keep running; an interrupted download is redone next time.
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
