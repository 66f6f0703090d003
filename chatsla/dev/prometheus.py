"""A private Prometheus server scraping chatsla workers, for the demo and the tests (RULES R8).

The dashboards and alerts under ``docker/`` read the workers' live projections through
Prometheus; this module runs the real server (Debian's ``prometheus`` package, installed by
``scripts/ensure-prometheus``) on this machine without Docker: one process per data folder, with a
generated ``prometheus.yml`` (static targets, a chosen scrape interval, the project's alert rules),
its TSDB, log and pid file in that folder. ``chatsla demo`` keeps it in ``.chatsla/prometheus``;
the tests start one per test in a temporary folder and always stop it. Nothing here is mocked:
queries go to Prometheus's own HTTP API.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

__all__ = ["PrometheusConfig", "PrometheusError", "Prometheus", "binary", "start", "stop", "running", "api"]

HINT = "install it with `bash scripts/ensure-prometheus` (the Debian package 'prometheus')"
JOB = "chatsla-worker"  # the job name the alert rules and dashboards expect (docker/prometheus/)


class PrometheusError(RuntimeError):
    """A one-line, human reason the server could not be started or queried."""


@dataclass(frozen=True)
class PrometheusConfig:
    """Where and how the server runs; ``targets`` are the workers' ``host:port``."""

    data_dir: Path
    targets: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 9090
    scrape_interval: str = "15s"
    rule_files: tuple[Path, ...] = ()
    die_with_parent: bool = False  # Linux: SIGTERM when the starting thread exits (tests)
    retention: str = "2d"

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().absolute())
        object.__setattr__(self, "rule_files", tuple(Path(p).absolute() for p in self.rule_files))
        object.__setattr__(self, "targets", tuple(self.targets))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "prometheus.yml"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "prometheus.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "prometheus.log"


@dataclass
class Prometheus:
    """A started server: its config and process (``None`` when found running from a pid file)."""

    config: PrometheusConfig
    pid: int
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.config.url

    def query(self, expr: str, **params: str) -> dict:
        """``/api/v1/query`` (instant query at now unless ``time=`` is given); the parsed answer."""
        return api(self.url, "query", query=expr, **params)


def binary() -> str | None:
    """The ``prometheus`` executable on PATH, or None."""
    return shutil.which("prometheus")


def api(base_url: str, path: str, timeout: float = 10.0, **params: str) -> dict:
    """GET ``/api/v1/<path>`` and return its JSON. An error answer (HTTP 400/422/503 with a JSON
    body: a bad query, a failed evaluation) is returned as is, ``status: "error"``, so callers
    can assert on it; a server that does not answer raises :class:`PrometheusError`."""
    url = f"{base_url}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return json.loads(body)
        except ValueError:
            raise PrometheusError(f"{url}: HTTP {e.code} {body[:200]!r}") from None
    except (urllib.error.URLError, OSError) as e:
        raise PrometheusError(f"{url}: {getattr(e, 'reason', e)}") from None


def write_config(config: PrometheusConfig) -> Path:
    """Write ``prometheus.yml``: one job (``chatsla-worker``) over the static targets, the rules,
    and the same scrape and rule-evaluation interval. JSON is valid YAML, so no YAML library is
    needed at run time."""
    doc = {
        "global": {"scrape_interval": config.scrape_interval, "evaluation_interval": config.scrape_interval,
                   "scrape_timeout": config.scrape_interval if _seconds(config.scrape_interval) < 10 else "10s"},
        "rule_files": [str(p) for p in config.rule_files],
        "scrape_configs": [{"job_name": JOB, "metrics_path": "/metrics",
                            "static_configs": [{"targets": list(config.targets)}]}],
    }
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.config_file.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return config.config_file


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit) and duration[: -len(unit)].isdigit():
            return int(duration[: -len(unit)]) * units[unit]
    raise PrometheusError(f"unsupported duration {duration!r} (use e.g. 1s, 500ms, 15s, 1m)")


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # Linux: a recycled pid is not our server
        try:
            return b"prometheus" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def _running_pid(config: PrometheusConfig) -> int | None:
    try:
        pid = int(config.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(lines[-n:]) or "(empty log)"


def _parent_death_signal(parent: int):
    def preexec() -> None:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def start(config: PrometheusConfig, wait_timeout: float = 60.0) -> Prometheus:
    """Start the server (or return the one already running from this data dir) and wait until it
    is ready (``/-/ready``). Raises :class:`PrometheusError` with one line on any failure, having
    stopped whatever it started."""
    exe = binary()
    if exe is None:
        raise PrometheusError(f"`prometheus` was not found on PATH: {HINT}")
    pid = _running_pid(config)
    if pid is not None:
        return Prometheus(config, pid)
    write_config(config)
    log = open(config.log_file, "ab")
    try:
        proc = subprocess.Popen(
            [exe, f"--config.file={config.config_file}", f"--storage.tsdb.path={config.data_dir / 'data'}",
             f"--storage.tsdb.retention.time={config.retention}", f"--web.listen-address={config.host}:{config.port}",
             "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=config.data_dir,
            start_new_session=True,
            preexec_fn=(_parent_death_signal(os.getpid())
                        if config.die_with_parent and sys.platform.startswith("linux") else None))
    finally:
        log.close()
    config.pid_file.write_text(f"{proc.pid}\n")
    server = Prometheus(config, proc.pid, proc)
    deadline = time.monotonic() + wait_timeout
    while True:
        if proc.poll() is not None:
            config.pid_file.unlink(missing_ok=True)
            raise PrometheusError(f"prometheus exited with code {proc.returncode} at start: {_tail(config.log_file)}")
        try:
            with urllib.request.urlopen(f"{config.url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            stop(config)
            raise PrometheusError(f"prometheus did not become ready at {config.url} within {wait_timeout:.0f} s: "
                                  f"{_tail(config.log_file)}")
        time.sleep(0.2)  # polling interval of a deadline-bounded readiness wait


def stop(config: PrometheusConfig, timeout: float = 20.0) -> bool:
    """Stop the server started from ``config.data_dir`` (SIGTERM, SIGKILL after ``timeout``).
    True if one was running."""
    pid = _running_pid(config)
    config.pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.1)  # polling interval of a deadline-bounded stop
    return True


@contextlib.contextmanager
def running(config: PrometheusConfig, wait_timeout: float = 60.0) -> Iterator[Prometheus]:
    """A started server that is always stopped on exit (tests)."""
    try:
        yield start(config, wait_timeout)
    finally:
        stop(config)
