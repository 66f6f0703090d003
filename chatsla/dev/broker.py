"""A real single-node Apache Kafka broker in KRaft mode, for development and tests.

The broker is the official Apache Kafka release, its jars resolved once through Maven Central
into a cache folder (``~/.cache/chatsla/kafka-<version>``), started with the JVM on the machine.

Version: Kafka 3.9.1. Kafka 4.x removed the protocol versions older than 2.1 (KIP-896); the
clients under chatsla (aiokafka under faust-streaming, kafka-python for admin and the CLI) still
open with some of those older request versions for parts of their protocol, so 3.9, the last line
that serves both old and new clients, is the dependable choice until they move.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

KAFKA_VERSION = "3.9.1"


class BrokerError(RuntimeError):
    """A one-line, human reason the broker could not be prepared, started or stopped."""


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int | None = None  # default: port + 1
    data_dir: Path = Path(".chatsla/kafka")
    cache_dir: Path = field(default_factory=lambda: Path(os.environ.get("CHATSLA_CACHE", Path.home() / ".cache/chatsla")))
    heap: str = "512m"
    default_partitions: int = 1

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def cport(self) -> int:
        return self.controller_port or self.port + 1

    @property
    def libs(self) -> Path:
        return self.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"


def _need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BrokerError(f"{tool} not found on PATH: {hint}")
    return path


def ensure_jars(config: BrokerConfig) -> Path:
    """Resolve the broker's jars through Maven once; later calls reuse the cache."""
    done = config.libs / ".complete"
    if done.exists():
        return config.libs
    mvn = _need("mvn", "install Maven (Debian: apt-get install maven) to fetch the Kafka jars")
    _need("java", "install a Java 17 runtime (Debian: apt-get install openjdk-17-jre-headless)")
    config.libs.mkdir(parents=True, exist_ok=True)
    pom = resources.files("chatsla.dev") / "pom.xml"
    with resources.as_file(pom) as pom_path:
        proc = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom_path), "dependency:copy-dependencies",
             f"-DoutputDirectory={config.libs}"],
            capture_output=True, text=True,
        )
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise BrokerError(f"Maven could not resolve Kafka {KAFKA_VERSION}: {tail}")
    if not any(config.libs.glob("kafka_2.13-*.jar")):
        raise BrokerError(f"Maven finished but no Kafka jar is in {config.libs}")
    done.touch()
    return config.libs


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port with nothing listening (and the next one free too, for the controller)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port < 65535 and _port_free(host, port + 1):
            return port
    raise BrokerError("no free port pair found")


def _properties(config: BrokerConfig) -> str:
    log_dir = (config.data_dir / "logs").resolve()
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{config.host}:{config.cport}",
        f"listeners=PLAINTEXT://{config.host}:{config.port},CONTROLLER://{config.host}:{config.cport}",
        f"advertised.listeners=PLAINTEXT://{config.host}:{config.port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={log_dir}",
        f"num.partitions={config.default_partitions}",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        "controlled.shutdown.enable=true",
        "log.retention.hours=-1",
        "",
    ])


def _read_pid(config: BrokerConfig) -> int | None:
    try:
        pid = int(config.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when the broker answers a metadata request (a TCP accept alone is not enough)."""
    import orjson  # noqa: F401  (keeps import cost here, not at module import)
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=f"{host}:{port}", client_id="chatsla-dev-probe",
                                 request_timeout_ms=int(timeout * 1000) + 1000,
                                 bootstrap_timeout_ms=int(timeout * 1000) + 1000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def start(config: BrokerConfig, wait_timeout: float = 90.0) -> int:
    """Start the broker in the background and wait until it answers; returns its pid."""
    pid = _read_pid(config)
    if pid is not None:
        raise BrokerError(f"a broker is already running from {config.data_dir} (pid {pid}); chatsla dev down stops it")
    java = _need("java", "install a Java 17 runtime (Debian: apt-get install openjdk-17-jre-headless)")
    for port in (config.port, config.cport):
        if not _port_free(config.host, port):
            raise BrokerError(f"port {config.host}:{port} is already in use; choose another with --port")
    libs = ensure_jars(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    props = config.data_dir / "server.properties"
    props.write_text(_properties(config))
    classpath = f"{libs}/*"
    if not (config.data_dir / "logs" / "meta.properties").exists():
        proc = subprocess.run([java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t",
                               uuid.uuid4().hex[:22], "-c", str(props)], capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
            raise BrokerError(f"formatting the KRaft storage failed: {tail}")
    log4j = config.data_dir / "log4j.properties"
    log4j.write_text("log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
                     "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
                     "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n")
    with open(config.log_file, "ab") as log:
        proc = subprocess.Popen(
            [java, f"-Xmx{config.heap}", f"-Xms{config.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
             f"-Dlog4j.configuration=file:{log4j.resolve()}", "-cp", classpath, "kafka.Kafka", str(props)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    config.pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + wait_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            config.pid_file.unlink(missing_ok=True)
            raise BrokerError(f"the broker exited with code {proc.returncode}: {_log_tail(config)}")
        if answers(config.host, config.port):
            return proc.pid
        time.sleep(0.3)  # polling a process we started, with a deadline
    stop(config)
    raise BrokerError(f"the broker did not answer within {wait_timeout:.0f} s: {_log_tail(config)}")


def _log_tail(config: BrokerConfig, lines: int = 3) -> str:
    try:
        text = config.log_file.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def stop(config: BrokerConfig, timeout: float = 30.0) -> bool:
    """Stop the broker started from ``config.data_dir``; False if none was running."""
    pid = _read_pid(config)
    if pid is None:
        config.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    config.pid_file.unlink(missing_ok=True)
    return True


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    bootstrap: str
    answering: bool
    version: str = KAFKA_VERSION


def status(config: BrokerConfig) -> Status:
    pid = _read_pid(config)
    return Status(pid is not None, pid, config.bootstrap, pid is not None and answers(config.host, config.port))
