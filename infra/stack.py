"""photos-stack: run the whole system on this machine, without Docker.

    photos-stack up     [--services cassandra,kafka,redis,api,streams]
                        [--cassandra-nodes N] [--kafka-brokers N] [--api-processes N] [--stream-workers N]
    photos-stack status
    photos-stack down   [--services ...]
    photos-stack wipe
    photos-stack fetch  [--services ...]
    photos-stack kill   NODE [--stay-down]
    photos-stack stop   NODE
    photos-stack start  NODE

`up` fetches what is missing, starts the three servers concurrently, waits until each
answers a real request, runs `photos-migrate`, then starts `photos-api` and
`photos-streams`. Services run detached and survive the launcher, each under a supervisor
(infra/supervise.py) that restarts it with back-off when it crashes or is killed; data, logs,
configs and pid files live under settings.stack_dir, downloaded jars under settings.cache_dir.
Running `up` again leaves healthy services alone, starts stopped ones, and restarts a server
whose configuration the settings have changed (or one running without a supervisor).

With counts above 1, `up` runs a cluster on this machine (infra/cluster.py, infra/nodes.py): Cassandra nodes
cassandra-1.. on 127.0.0.2.., joining one at a time; Kafka brokers kafka-1.. in one KRaft quorum; API
processes api-1.. on one port; stream workers streams-1.. in one consumer group. `kill`, `stop` and `start`
act on one of them by name.
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
from infra import StackError, ring
from infra.cluster import (
    MAX_COUNTS,
    Topology,
    app_environment,
    available_memory_bytes,
    build_stack,
    check_bounds,
    check_data_matches,
    environment_file_text,
    find_service,
    memory_shortfall,
    recorded_topology,
    save_topology,
)
from infra.fetch import fetch, kafka_tools_jars
from infra.nodes import CassandraNode, KafkaNode
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
from infra.services import SERVER_NAMES, SERVICE_NAMES, Server, Service, project_script

POLL_INTERVAL_S = 0.25
KILL_GRACE_S = 5.0
MIGRATE_TIMEOUT_S = 300.0


# --- fetch -------------------------------------------------------------------------


def fetch_for(settings: Settings, services: list[Service]) -> None:
    """Install the programs and download the jars the selected servers need."""
    servers = [service for service in services if isinstance(service, Server)]
    programs = {program: package for server in servers for program, package in server.apt_programs.items()}
    bundles = list({server.jar_bundle.home: server.jar_bundle for server in servers if server.jar_bundle is not None}
                   .values())
    if any(isinstance(server, KafkaNode) for server in servers):
        bundles.append(kafka_tools_jars(settings))  # `status` shows the quorum with them
    fetch(programs, bundles, settings.java_home)


# --- up ----------------------------------------------------------------------------


async def start_all(services: list[Service]) -> list[StackError]:
    """Start the services concurrently and wait for each to answer; return the failures. Those that join a
    cluster one at a time (Cassandra nodes) start in order, each once the one before answers."""
    in_turn = [service for service in services if getattr(service, "joins_one_at_a_time", False)]
    together = [service for service in services if service not in in_turn]
    chains = [[service] for service in together] + ([in_turn] if in_turn else [])
    results = await asyncio.gather(*(start_in_turn(chain) for chain in chains), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, StackError):
            raise result
    return [result for result in results if isinstance(result, StackError)]


async def start_in_turn(services: list[Service]) -> None:
    """Start each service once the one before it answers; a failure leaves the rest unstarted."""
    for service in services:
        await start(service)


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
    for port in () if service.port_is_shared else service.ports:
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


def cmd_up(settings: Settings, names: list[str], topology: Topology | None = None) -> int:
    stack_dir = Path(settings.stack_dir)
    previous = recorded_topology(stack_dir)
    topology = topology or previous
    services = build_stack(settings, topology, names)
    if topology != Topology():
        check_memory(services)
    fetch_for(settings, services)
    stop_apps_left_over(settings, previous, topology, names)
    save_topology(stack_dir, topology)
    write_cluster_environment(settings, topology)
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


def check_memory(services: list[Service]) -> None:
    """StackError when the services not running yet would not fit in the memory available now."""
    starting = [service for service in services if service.running_pid() is None and service.unsupervised_pid() is None]
    shortfall = memory_shortfall(starting, available_memory_bytes())
    if shortfall:
        raise StackError(shortfall)


def stop_apps_left_over(settings: Settings, previous: Topology, topology: Topology, names: list[str]) -> None:
    """Stop the API processes and stream workers of the previous count when the count changes: `api` gives
    way to `api-1`, `api-2`, ... and the reverse."""
    for kind in ("api", "streams"):
        if kind in names and previous.count(kind) != topology.count(kind):
            kept = {service.name for service in build_stack(settings, topology, [kind])}
            left_over = [service for service in build_stack(settings, previous, [kind]) if service.name not in kept]
            stop_all([service for service in left_over if service.running_pid() or service.unsupervised_pid()])


def write_cluster_environment(settings: Settings, topology: Topology) -> None:
    """<stack_dir>/cluster.env: the settings the launcher gives the app processes of a cluster."""
    path = Path(settings.stack_dir) / "cluster.env"
    env = app_environment(settings, topology)
    if env:
        path.write_text(environment_file_text(env))
    else:
        path.unlink(missing_ok=True)


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
        state = "paused" if is_paused(pid) else "running"
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
    services = build_stack(settings, recorded_topology(Path(settings.stack_dir)), names)
    healthy = True
    for service, (line, up) in zip(services, asyncio.run(describe_all(services)), strict=True):
        print(line)
        healthy &= up or not service.is_server
    for line in asyncio.run(cluster_views(settings, services)):
        print(line)
    return 0 if healthy else 1


async def cluster_views(settings: Settings, services: list[Service]) -> list[str]:
    """The ring of a Cassandra cluster and the quorum of a Kafka cluster, as they see themselves."""
    nodes = [service for service in services if isinstance(service, CassandraNode)]
    brokers = [service for service in services if isinstance(service, KafkaNode)]
    views = []
    if nodes:
        views.append(ring.cassandra_ring(nodes))
    if brokers:
        views.append(ring.kafka_quorum(brokers, kafka_tools_jars(settings)))
    return [line for lines in await asyncio.gather(*views) for line in lines]


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
    services = build_stack(settings, recorded_topology(Path(settings.stack_dir)), names)
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
    fetch_for(settings, build_stack(settings, recorded_topology(Path(settings.stack_dir)), names))
    print("fetch     everything is in place")
    return 0


# --- one node ----------------------------------------------------------------------


def stack_node(settings: Settings, name: str) -> Service:
    return find_service(build_stack(settings, recorded_topology(Path(settings.stack_dir)), SERVICE_NAMES), name)


def cmd_kill(settings: Settings, name: str, stay_down: bool = False) -> int:
    """SIGKILL a node's process, as a crash would: its supervisor starts it again, unless `stay_down`, which
    kills the supervisor too (`photos-stack start NODE` brings it back)."""
    service = stack_node(settings, name)
    supervisor, pid = service.running_pid(), service.service_pid()
    if stay_down and supervisor is not None:
        signal_group(supervisor, signal.SIGKILL)
        print(f"{service.name:<9} killed with its supervisor (SIGKILL to process group {supervisor}); "
              f"`photos-stack start {service.name}` brings it back")
        return 0
    if pid is None:
        raise StackError(f"{service.name} is not running (`photos-stack status` shows the stack)")
    os.kill(pid, signal.SIGKILL)
    print(f"{service.name:<9} killed (SIGKILL to pid {pid}); its supervisor starts it again")
    return 0


def is_paused(pid: int) -> bool:
    """The process is stopped by a signal (SIGSTOP: `photos-stack pause`), state T in /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


def cmd_pause(settings: Settings, name: str) -> int:
    """SIGSTOP a node's process: a node that hangs (a long GC pause, a stuck disk) rather than dies. Its
    connections stay open and its supervisor sees nothing; `photos-stack resume NODE` lets it go on."""
    service = stack_node(settings, name)
    pid = service.service_pid()
    if pid is None:
        raise StackError(f"{service.name} is not running (`photos-stack status` shows the stack)")
    os.kill(pid, signal.SIGSTOP)
    print(f"{service.name:<9} paused (SIGSTOP to pid {pid}); `photos-stack resume {service.name}` lets it go on")
    return 0


def cmd_resume(settings: Settings, name: str) -> int:
    service = stack_node(settings, name)
    pid = service.service_pid()
    if pid is None:
        raise StackError(f"{service.name} is not running (`photos-stack status` shows the stack)")
    os.kill(pid, signal.SIGCONT)
    print(f"{service.name:<9} resumed (SIGCONT to pid {pid})")
    return 0


def cmd_stop(settings: Settings, name: str) -> int:
    stop_all([stack_node(settings, name)])
    return 0


def cmd_start(settings: Settings, name: str) -> int:
    service = stack_node(settings, name)
    fetch_for(settings, [service])
    failures = asyncio.run(start_all([service]))
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


# --- command line ------------------------------------------------------------------

COMMANDS: dict[str, Callable[[Settings, list[str]], int]] = {
    "up": cmd_up,
    "status": cmd_status,
    "down": cmd_down,
    "wipe": cmd_wipe,
    "fetch": cmd_fetch,
}
COMMANDS_WITH_SERVICES = ("up", "down", "fetch")
NODE_COMMANDS: dict[str, Callable[..., int]] = {"kill": cmd_kill, "stop": cmd_stop, "start": cmd_start,
                                                "pause": cmd_pause, "resume": cmd_resume}
# Two of these at once could start a server twice on the same data dir: they take turns (a kill does not wait).
COMMANDS_THAT_CHANGE_STATE = ("up", "down", "wipe", "stop", "start")

COMMAND_HELP = {
    "up": "start the services (fetching what is missing) and wait until they answer",
    "status": "show each service; exit 1 if Cassandra, Kafka or Redis is not answering",
    "down": "stop the services (SIGTERM, then SIGKILL after a grace period)",
    "wipe": "stop everything and delete all data, logs and configs (keeps downloaded jars)",
    "fetch": "download the jars and install the programs that are missing",
    "kill": "SIGKILL one node (cassandra-2, kafka-3, redis, api-2, streams-1, ...); its supervisor restarts it",
    "stop": "stop one node (SIGTERM, then SIGKILL after a grace period)",
    "start": "start one node and wait until it answers",
    "pause": "SIGSTOP one node: it hangs, as a node in a long pause does, until `photos-stack resume`",
    "resume": "SIGCONT a paused node",
}
COUNT_HELP = {
    "cassandra": "Cassandra nodes, on 127.0.0.2.. (default: what the stack dir holds, else 1)",
    "kafka": "Kafka brokers in one KRaft quorum, on 127.0.0.2.. (default: what the stack dir holds, else 1)",
    "api": "API processes sharing the API port (default: as last started, else 1)",
    "streams": "stream workers in one consumer group (default: as last started, else 1)",
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
        if name == "up":
            for kind, flag in (("cassandra", "--cassandra-nodes"), ("kafka", "--kafka-brokers"),
                               ("api", "--api-processes"), ("streams", "--stream-workers")):
                sub.add_argument(flag, type=int, metavar="N", help=f"{COUNT_HELP[kind]}; at most {MAX_COUNTS[kind]}")
    for name, command in NODE_COMMANDS.items():
        sub = commands.add_parser(name, help=COMMAND_HELP[name])
        sub.add_argument("node", help="a node's name, as `photos-stack status` shows it")
        if command is cmd_kill:
            sub.add_argument("--stay-down", action="store_true",
                             help="kill its supervisor too, so that it stays down until `photos-stack start`")
    return parser.parse_args(argv)


def wanted_topology(settings: Settings, args: argparse.Namespace) -> Topology:
    """The topology the command acts on: what the stack dir holds, with the counts `up` was given. StackError
    (one line) for a count this machine cannot hold or one the stack dir's data is not of."""
    stack_dir = Path(settings.stack_dir)
    topology = recorded_topology(stack_dir)
    if args.command != "up":
        return topology
    topology = topology.with_counts(cassandra_nodes=args.cassandra_nodes, kafka_brokers=args.kafka_brokers,
                                    api_processes=args.api_processes, stream_workers=args.stream_workers)
    check_bounds(topology)
    check_data_matches(stack_dir, topology)
    return topology


def export_topology(settings: Settings, topology: Topology) -> Settings:
    """Point this process, and so every process it starts, at the cluster of `topology`; its settings then."""
    env = app_environment(settings, topology)
    if not env:
        return settings
    os.environ.update(env)
    return Settings.from_env()


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # progress lines show up at once, even piped
    args = parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as error:  # a PHOTOS_* variable that does not parse
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        topology = wanted_topology(settings, args)
        settings = export_topology(settings, topology)
        if args.command not in COMMANDS_THAT_CHANGE_STATE:
            return run_command(settings, args, topology)
        with exclusive_lock(Path(settings.stack_dir) / "run" / "photos-stack.lock"):
            return run_command(settings, args, topology)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Services already started keep running; an interrupted download is redone next time.
        print("interrupted", file=sys.stderr)
        return 130


def run_command(settings: Settings, args: argparse.Namespace, topology: Topology) -> int:
    if args.command == "up":
        return cmd_up(settings, args.services, topology)
    if args.command == "kill":
        return cmd_kill(settings, args.node, args.stay_down)
    if args.command in NODE_COMMANDS:
        return NODE_COMMANDS[args.command](settings, args.node)
    return COMMANDS[args.command](settings, args.services)


if __name__ == "__main__":
    sys.exit(main())
