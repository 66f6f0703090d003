"""A real single-node Apache Kafka broker in KRaft mode, for development and tests.

The broker is the official Apache Kafka release: its jars are resolved once through Maven Central
(``chatsla/dev/pom.xml``, Maven's local repository ``~/.m2`` is reused) into a cache folder,
``~/.cache/chatsla/kafka/kafka-<version>/libs``, and run with the JVM on the machine as one process
that is both KRaft controller and broker (``java -cp libs/* kafka.Kafka server.properties``).
Nothing is mocked; ``chatsla dev up|down|status`` (cli.py) and the integration tests' fixture
(tests/integration/conftest.py) are thin layers over :func:`start`, :func:`stop` and :func:`status`.

Version: Kafka 4.4.0 (pinned in pom.xml, read from there into :data:`KAFKA_VERSION`), the newest
release on Maven Central when it was chosen. Kafka 4.0 removed the protocol versions older than
Kafka 2.1 (KIP-896), so a 4.x broker is only usable if every client chatsla runs negotiates
current request versions. Checked empirically with the clients this project installs, aiokafka
0.14.0 (under faust-streaming 0.15.3) and kafka-python 3.0.12, against 4.0.0, 4.1.2, 4.2.2,
4.3.1 and 4.4.0 (and 3.9.2 as the baseline): kafka-python admin create (3 partitions) /
describe / delete topics, produce (acks=all, gzip) and consume in a group with committed
offsets, offset look-ups; aiokafka admin, producer (plain, batch, idempotent, transactional),
a two-member consumer group with committed offsets, ``read_committed`` reads with both clients;
and faust's own CreateTopics through aiokafka. All passed on every release, and on 4.4.0 so did
this repository's integration suite (faust workers, replay, tests/integration).

The 4.x floor is on the clients: faust-streaming with aiokafka < 0.13 sends CreateTopics v1,
which 4.x no longer serves (the broker closes the connection: checked with aiokafka 0.11.0,
which works against 3.9.2), while aiokafka 0.13.0 negotiates and passes. kafka-python 2.1.0's
produce / consume / offset look-ups also work against 4.4.0. So chatsla needs aiokafka >= 0.13
with this broker; with an older aiokafka pin Kafka 3.9.x instead (CHATSLA_KAFKA_VERSION=3.9.2
runs it with this same pom).

One 4.x default matters for tests that replay old or simulated traffic: records whose timestamp
is more than ``log.message.timestamp.after.max.ms`` (1 h in 4.x) in the future are rejected, as on
a production 4.x broker; chatsla's producers leave the timestamp to the client, so this does not
bite, and it is deliberately not relaxed here.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator

from chatsla.streams.admin import broker_answers

__all__ = [
    "KAFKA_VERSION", "BrokerConfig", "BrokerError", "BrokerAlreadyRunning", "PortInUse", "Status",
    "ensure_jars", "start", "stop", "status", "answers", "free_port",
]


def _pinned_version() -> str:
    pom = resources.files("chatsla.dev") / "pom.xml"
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.fromstring(pom.read_bytes()).find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise RuntimeError("chatsla/dev/pom.xml has no <kafka.version> property")
    return node.text.strip()


KAFKA_VERSION = _pinned_version()
JAVA_HINT = "install a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
MAVEN_HINT = "install Maven 3.8+ (Debian/Ubuntu: apt-get install maven); it fetches the Kafka jars once"
COMPLETE = ".complete"  # marker in the libs folder: the jar list of a finished resolution


class BrokerError(RuntimeError):
    """A one-line, human reason the broker could not be prepared, started or stopped."""


class PortInUse(BrokerError):
    """The broker's or controller's port is taken (checked before the start, or seen in the log)."""


class BrokerAlreadyRunning(BrokerError):
    """``start`` found a live broker started from the same data dir."""

    def __init__(self, message: str, status: "Status") -> None:
        super().__init__(message)
        self.status = status


def _default_cache() -> Path:
    env = os.environ.get("CHATSLA_KAFKA_CACHE_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "chatsla" / "kafka"


@dataclass(frozen=True)
class BrokerConfig:
    """Where and how the broker runs. Paths are made absolute (and ``~`` expanded) on creation."""

    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int | None = None  # default: port + 1
    data_dir: Path = Path(".chatsla/kafka")
    cache_dir: Path = field(default_factory=_default_cache)
    heap: str = "512m"  # -Xmx/-Xms; a single test broker is comfortable in 512 MiB
    default_partitions: int = 1  # num.partitions for topics created without a count
    # CHATSLA_KAFKA_VERSION tries the app against another release (any 3.9+/4.x resolves and starts
    # with this pom); the pinned one is what tests and CI use.
    kafka_version: str = field(default_factory=lambda: os.environ.get("CHATSLA_KAFKA_VERSION") or KAFKA_VERSION)
    shutdown_timeout: float = 30.0  # stop(): SIGTERM, then SIGKILL after this many seconds
    # Linux: the broker gets SIGTERM when the thread that started it exits, so a test session that
    # is killed (and cannot run its finalizers) leaves no broker behind. Off for `chatsla dev up`.
    die_with_parent: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().absolute())
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser().absolute())
        if not 0 < self.port < 65536 or not 0 < self.cport < 65536 or self.cport == self.port:
            raise BrokerError(f"bad ports: broker {self.port}, controller {self.cport}")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def cport(self) -> int:
        return self.controller_port or self.port + 1

    @property
    def libs(self) -> Path:
        return self.cache_dir / f"kafka-{self.kafka_version}" / "libs"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "broker.json"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    bootstrap: str
    answering: bool
    version: str
    data_dir: Path
    log_file: Path


# --------------------------------------------------------------------------- small helpers

def _need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BrokerError(f"`{tool}` was not found on PATH: {hint}")
    return path


def _one_line(lines: list[str], n: int) -> str:
    return " | ".join(line.strip() for line in lines[-n:] if line.strip())


START_MARK = "--- chatsla dev: starting Kafka"


def _last_run(path: Path, limit: int = 256 * 1024) -> str:
    """The broker log from our last start marker on (at most the last ``limit`` bytes)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    at = text.rfind(START_MARK)
    return text[at:] if at >= 0 else text


def _tail(path: Path, n: int = 5) -> str:
    if not path.exists():
        return "(no log)"
    lines = [ln for ln in _last_run(path).splitlines() if not ln.startswith(START_MARK)]
    return _one_line(lines, n) or "(empty log)"


def _os_errors(fn):
    """Turn a failed file operation (read-only or full disk, bad path) into a one-line BrokerError."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BrokerError:
            raise
        except OSError as e:
            what = {"ensure_jars": "prepare the Kafka jars", "start": "start the broker"}.get(fn.__name__, "stop the broker")
            where = f": {e.filename}" if e.filename else ""
            raise BrokerError(f"cannot {what}: {e.strerror or e}{where}") from None

    return wrapper


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (concurrent test sessions, `make` and the CLI)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port with nothing listening on it nor on the next one (the controller's)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port < 65535 and _port_free(host, port + 1):
            return port
    raise BrokerError("no free pair of adjacent ports found")


# --------------------------------------------------------------------------- jars

def _complete_libs(libs: Path) -> bool:
    try:
        names = (libs / COMPLETE).read_text().split()
    except FileNotFoundError:
        return False
    return bool(names) and all((libs / n).is_file() for n in names)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _maven_tail(output: str, n: int = 2) -> str:
    """The lines of Maven's output that say what went wrong, without its boilerplate."""
    boring = ("Re-run Maven", "For more information", "To see the full stack trace", "Please read the following",
              "[Help 1] http")
    lines = []
    for line in _ANSI.sub("", output).splitlines():
        line = line.replace(" -> [Help 1]", "").strip()
        if line and line != "[ERROR]" and not any(b in line for b in boring):
            lines.append(line)
    return _one_line(lines, n) or "(no output)"


def _run_maven(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 and "cached in the local repository" in proc.stdout + proc.stderr:
        # an earlier failed download (network blip) is remembered for a day unless forced: force once
        proc = subprocess.run([cmd[0], "-U", *cmd[1:]], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    return proc


@_os_errors
def ensure_jars(config: BrokerConfig, timeout: float = 900.0) -> Path:
    """The folder holding every jar the broker needs; resolved through Maven the first time only.

    A finished resolution is marked by a ``.complete`` file listing the jars; anything short of
    that is resolved again, into a temporary folder that is renamed into place when complete, under
    a file lock, so concurrent callers neither see half a classpath nor run Maven twice.
    """
    libs = config.libs
    if _complete_libs(libs):
        return libs
    mvn = _need("mvn", MAVEN_HINT)
    _need("java", JAVA_HINT)
    with _locked(libs.parent / ".lock"):
        if _complete_libs(libs):  # another process finished while we waited
            return libs
        tmp = libs.parent / f"libs.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        with resources.as_file(resources.files("chatsla.dev") / "pom.xml") as pom:
            cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
                   "-DincludeScope=runtime", f"-Dkafka.version={config.kafka_version}", f"-DoutputDirectory={tmp}"]
            try:
                proc = _run_maven(cmd, timeout)
            except subprocess.TimeoutExpired:
                shutil.rmtree(tmp, ignore_errors=True)
                raise BrokerError(f"Maven did not resolve Kafka {config.kafka_version} within {timeout:.0f} s "
                                  "(is Maven Central reachable?)") from None
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BrokerError(f"Maven could not resolve Kafka {config.kafka_version} (exit {proc.returncode}): "
                              f"{_maven_tail(proc.stdout + proc.stderr)}")
        jars = sorted(p.name for p in tmp.glob("*.jar"))
        if f"kafka_2.13-{config.kafka_version}.jar" not in jars:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BrokerError(f"Maven finished but kafka_2.13-{config.kafka_version}.jar is not among the jars it "
                              f"copied ({len(jars)} jars)")
        (tmp / COMPLETE).write_text("\n".join(jars) + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
    return libs


# --------------------------------------------------------------------------- process bookkeeping

def _alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) Kafka broker process."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:  # our child, exited (and now reaped)
            return False
    else:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is an exited child spawned elsewhere in this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():  # Linux: guard against a recycled pid and zombies
        try:
            if b"kafka.Kafka" not in (proc / "cmdline").read_bytes():
                return False
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        except (FileNotFoundError, IndexError, PermissionError):
            return False
    return True


def _running_pid(config: BrokerConfig) -> int | None:
    try:
        pid = int(config.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _state(config: BrokerConfig) -> dict:
    try:
        return json.loads(config.state_file.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a Kafka broker at host:port answers a metadata request (an open port is not enough).

    A free local port is checked first: nothing listens there, so the client's connection retries
    are skipped."""
    if _port_free(host, port) and host in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return False  # nothing listens: skip the client's connection retries
    return broker_answers(f"{host}:{port}", timeout)


# --------------------------------------------------------------------------- broker files

def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what kafka-storage random-uuid prints).
    Never one starting with '-': the storage tool would read it as an option (1 start in 64 failed)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _properties(config: BrokerConfig) -> str:
    h, p, c = config.host, config.port, config.cport
    settings = {
        # KRaft, one process that is both controller and broker, node 1, static one-voter quorum
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{h}:{c}",
        "listeners": f"PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}",
        "advertised.listeners": f"PLAINTEXT://{h}:{p}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(config.log_dir),
        # one replica of everything, including the internal topics
        "num.partitions": str(config.default_partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",  # 50 by default: slower first group join, no use here
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # tests: groups form at once, topics exist only when the app creates them
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        # a development box: no time-based deletion of replayed history, small thread pools
        "log.retention.hours": "-1",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        # short, still clean shutdown: the broker's controlled shutdown is acknowledged quickly
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "9000",
    }
    return "".join(f"{k}={v}\n" for k, v in settings.items())


_LOG4J2 = """\
# chatsla dev broker: Log4j 2 (Kafka 4.x); INFO from the lifecycle, WARN from everything else
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka.Kafka
logger.kafka.level = INFO
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = INFO
logger.app.name = org.apache.kafka.common.utils.AppInfoParser
logger.app.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
logger.ctl.name = kafka.server.ControllerServer
logger.ctl.level = INFO
"""


def _java_cmd(java: str, config: BrokerConfig, main: str, *args: str) -> list[str]:
    return [java, f"-Xmx{config.heap}", f"-Xms{config.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={config.data_dir / 'log4j2.properties'}",
            "-cp", f"{config.libs}{os.sep}*", main, *args]


def _format_storage(java: str, config: BrokerConfig) -> None:
    cmd = _java_cmd(java, config, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                    "--cluster-id", new_cluster_id(), "--config", str(config.properties_file))
    cmd[1:3] = ["-Xmx256m"]  # the tool is short-lived
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                          cwd=config.data_dir)
    if proc.returncode != 0:
        raise BrokerError(f"formatting the KRaft storage in {config.log_dir} failed (exit {proc.returncode}): "
                          f"{_one_line((proc.stdout + proc.stderr).splitlines(), 3)}")


def _parent_death_signal(parent: int):
    """A preexec_fn: SIGTERM this child when its parent goes away (Linux prctl PR_SET_PDEATHSIG)."""
    def preexec() -> None:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


_children: dict[int, subprocess.Popen] = {}  # brokers started by this process, reaped by stop()


def _exit_error(config: BrokerConfig, code: int | None) -> BrokerError:
    log = _last_run(config.log_file)
    if "Address already in use" in log:
        return PortInUse(f"port {config.host}:{config.port} or {config.cport} was taken while the broker started; "
                         f"choose another with --port or CHATSLA_KAFKA_PORT")
    if "UnsupportedClassVersionError" in log:
        return BrokerError(f"Kafka {config.kafka_version} needs Java 17 or newer and `java` is older: {JAVA_HINT}")
    if "Invalid cluster.id" in log:
        return BrokerError(f"the data in {config.log_dir} belongs to another cluster or node; "
                           f"delete {config.data_dir} and retry")
    return BrokerError(f"the broker exited with code {code} (log {config.log_file}): {_tail(config.log_file)}")


@_os_errors
def start(config: BrokerConfig, wait_timeout: float = 90.0) -> int:
    """Start the broker in the background and wait until it answers a metadata request; its pid.

    Raises :class:`BrokerAlreadyRunning` if a broker from ``config.data_dir`` is live, and
    :class:`BrokerError` for a busy port, a missing ``java``/``mvn``, a Maven failure, or a broker
    that exits or does not answer within ``wait_timeout`` seconds (it is stopped again then).
    ``wait_timeout`` counts from the JVM's launch: resolving the jars the first time comes on top.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(config.data_dir / ".lock"):
        pid = _running_pid(config)
        if pid is not None:
            st = status(config)
            raise BrokerAlreadyRunning(f"a broker from {config.data_dir} is already running on {st.bootstrap} "
                                       f"(pid {pid}); `chatsla dev down` stops it", st)
        java = _need("java", JAVA_HINT)
        for port, role in ((config.port, "broker"), (config.cport, "controller")):
            if not _port_free(config.host, port):
                other = " (a Kafka broker answers there)" if answers(config.host, port, 1.0) else ""
                raise PortInUse(f"{role} port {config.host}:{port} is already in use{other}; "
                                  f"choose another with --port or CHATSLA_KAFKA_PORT")
        ensure_jars(config)
        config.properties_file.write_text(_properties(config))
        (config.data_dir / "log4j2.properties").write_text(_LOG4J2)
        if not (config.log_dir / "meta.properties").exists():
            _format_storage(java, config)
        with open(config.log_file, "ab") as log:
            log.write(f"{START_MARK} {config.kafka_version} on {config.bootstrap} "
                      f"at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
            log.flush()
            proc = subprocess.Popen(_java_cmd(java, config, "kafka.Kafka", str(config.properties_file)),
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=config.data_dir, start_new_session=True,
                                    preexec_fn=_parent_death_signal(os.getpid())
                                    if config.die_with_parent and sys.platform.startswith("linux") else None)
        _children[proc.pid] = proc
        config.pid_file.write_text(f"{proc.pid}\n")
        config.state_file.write_text(json.dumps({
            "pid": proc.pid, "host": config.host, "port": config.port, "controller_port": config.cport,
            "bootstrap": config.bootstrap, "version": config.kafka_version, "libs": str(config.libs),
            "started": time.time()}, indent=1) + "\n")
        deadline = time.monotonic() + wait_timeout
        while True:
            code = proc.poll()
            if code is not None:
                _children.pop(proc.pid, None)
                config.pid_file.unlink(missing_ok=True)
                raise _exit_error(config, code)
            if answers(config.host, config.port, timeout=2.0):
                return proc.pid
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)  # poll interval of a deadline-bounded wait on a process we started
    stop(config)
    raise BrokerError(f"the broker did not answer on {config.bootstrap} within {wait_timeout:.0f} s "
                      f"(log {config.log_file}): {_tail(config.log_file)}")


@_os_errors
def stop(config: BrokerConfig, timeout: float | None = None) -> bool:
    """Stop the broker started from ``config.data_dir``: SIGTERM, then SIGKILL after ``timeout``
    seconds (default ``config.shutdown_timeout``). False if none was running."""
    timeout = config.shutdown_timeout if timeout is None else timeout
    pid = _running_pid(config)
    if pid is None:
        config.pid_file.unlink(missing_ok=True)
        return False
    child = _children.pop(pid, None)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, child, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, child, 10.0):
            raise BrokerError(f"the broker (pid {pid}) survived SIGKILL")
    config.pid_file.unlink(missing_ok=True)
    return True


def _wait_gone(pid: int, child: subprocess.Popen | None, timeout: float) -> bool:
    if child is not None:
        try:
            child.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)  # poll interval: a process we did not spawn cannot be waited on
    return True


def status(config: BrokerConfig) -> Status:
    """Is a broker from ``config.data_dir`` running (pid file, live process) and answering?"""
    pid = _running_pid(config)
    state = _state(config) if pid is not None else {}
    host, port = state.get("host", config.host), state.get("port", config.port)
    return Status(
        running=pid is not None,
        pid=pid,
        bootstrap=f"{host}:{port}",
        answering=pid is not None and answers(host, port),
        version=state.get("version", config.kafka_version),
        data_dir=config.data_dir,
        log_file=config.log_file,
    )
