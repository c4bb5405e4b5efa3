"""photos-stack: run the whole system on this machine, without Docker.

    photos-stack up     [--services cassandra,kafka,redis,api,streams]
    photos-stack status
    photos-stack down   [--services ...]
    photos-stack wipe
    photos-stack fetch  [--services ...]

`up` fetches what is missing, starts the three servers concurrently, waits until each
answers a real request, runs `photos-migrate`, then starts `photos-api` and
`photos-streams`. Services run detached and survive the launcher; data, logs, configs
and pid files live under settings.stack_dir, downloaded jars under settings.cache_dir.
Running `up` again leaves healthy services alone and restarts dead ones.
"""

from __future__ import annotations

import argparse
import asyncio
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
from infra.procs import exclusive_lock, file_size, process_alive, signal_group, spawn_detached, tail, write_pid
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
    # Where each log ends before this start, so that a failure shows only what this run wrote.
    log_marks = {log: file_size(log) for log in service.log_files}
    if pid is None:
        pid = await launch(service)
        outcome = "ready in {:5.1f} s"
    else:
        outcome = "running, answered in {:.1f} s"
    await wait_until_answering(service, pid, began + service.ready_timeout_s, log_marks)
    ports = ",".join(map(str, service.ports)) or "-"
    print(f"{service.name:<9} {outcome.format(time.monotonic() - began)}  pid {pid}  port {ports}")


async def launch(service: Service) -> int:
    service.pid_file.unlink(missing_ok=True)  # stale: its process is gone
    for port in service.ports:
        if await tcp_accepts(service.host, port):
            raise StackError(
                f"{service.name}: port {port} is taken by a process photos-stack did not start"
                " (another stack, or a system service); stop it or change the PHOTOS_* port setting"
            )
    argv = await asyncio.to_thread(service.prepare)
    pid = spawn_detached(argv, service.console_log, service.workdir)
    write_pid(service.pid_file, pid)
    return pid


async def wait_until_answering(service: Service, pid: int, deadline: float, log_marks: dict[Path, int]) -> None:
    while not await service.answers():
        if not process_alive(pid):
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
    pid = service.running_pid()
    answering = await service.answers()
    state = "running" if pid is not None else "stopped"
    ports = ",".join(map(str, service.ports)) or "-"
    line = f"{service.name:<9} {state:<8} pid {pid or '-':<7} port {ports:<10} "
    line += "answering" if answering else "not answering"
    if pid is None and answering:
        line += " (but not started by photos-stack)"
    reason = service.missing_reason()
    if reason:
        line += f" ({reason})"
    return line, pid is not None and answering


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


def stop_all(services: list[Service]) -> None:
    """SIGTERM every running service at once, then wait for each; SIGKILL the late ones."""
    running: dict[Service, int] = {}
    for service in services:
        pid = service.running_pid()
        if pid is None:
            print(f"{service.name:<9} not running")
        else:
            running[service] = pid
            signal_group(pid, signal.SIGTERM)
    began = time.monotonic()
    while running:
        time.sleep(POLL_INTERVAL_S)
        for service, pid in list(running.items()):
            if not process_alive(pid):
                print(f"{service.name:<9} stopped in {time.monotonic() - began:5.1f} s")
                del running[service]
            elif time.monotonic() > began + service.stop_timeout_s:
                signal_group(pid, signal.SIGKILL)
                wait_for_exit(pid, deadline=time.monotonic() + KILL_GRACE_S)
                print(f"{service.name:<9} killed: still running {service.stop_timeout_s:.0f} s after SIGTERM")
                del running[service]
    for service in services:
        service.pid_file.unlink(missing_ok=True)


def wait_for_exit(pid: int, deadline: float) -> bool:
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


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
