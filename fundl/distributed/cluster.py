"""A Ray cluster of several nodes on this one machine, started with ``ray start`` (for
benchmarks and tests of the multi-node path without a second machine).

Each node is a ``ray start --block`` process that this object starts and stops by its own
process id (SIGTERM makes Ray drain and stop that node's processes); ``ray stop`` is never
used, because it stops every Ray process on the machine, other people's included. The nodes
share a fresh random token (Ray 2.60's token authentication, on for all of them and for this
driver, so the pitfall of one node or the driver without it cannot happen), a private temp
directory (so ``ray.init()`` elsewhere on the machine does not find this cluster), no
dashboard, no usage statistics, and explicit memory limits (each node would otherwise claim
a share of the machine's memory as if it were alone).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from . import _runtime


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """``num_nodes`` Ray nodes on this machine (``ray start`` processes), and a driver joined
    to them.

    Args:
        num_nodes: nodes, the first one the head (>= 1).
        cpus_per_node: CPUs each node offers to Ray's scheduler.
        object_store_memory: bytes of each node's object store.
        memory: bytes of each node's memory resource.
        port: the head's GCS port (default: a free one).
        timeout: seconds to wait for the nodes to come up.

    Attributes:
        address: ``"ip:port"`` of the head, once started.

    Example:
        >>> with LocalCluster(num_nodes=2) as cluster:      # starts, connects, stops
        ...     model.fit(x, y, strategy=fl.distributed.ParameterServerStrategy(2))
    """

    def __init__(self, num_nodes=2, cpus_per_node=1, object_store_memory=200 * 1024 ** 2,
                 memory=2 * 1024 ** 3, port=None, timeout=120.0):
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"LocalCluster: num_nodes must be an int >= 1, got {num_nodes!r}.")
        self.num_nodes = num_nodes
        self.cpus_per_node = cpus_per_node
        self.object_store_memory = int(object_store_memory)
        self.memory = int(memory)
        self.port = port
        self.timeout = timeout
        self.address = None
        self._procs = []
        self._token = None
        self._temp_dir = None
        self._connected = False

    def _ray_exe(self):
        exe = os.path.join(os.path.dirname(sys.executable), "ray")
        return exe if os.path.exists(exe) else (shutil.which("ray") or "ray")

    def _env(self):
        return dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self._token,
                    RAY_USAGE_STATS_ENABLED="0")

    def _node_args(self):
        return ["--block", "--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus_per_node}",
                "--disable-usage-stats", f"--object-store-memory={self.object_store_memory}",
                f"--memory={self.memory}"]

    def _spawn(self, args):
        log = open(os.path.join(self._temp_dir, f"node{len(self._procs)}.log"), "w")
        try:
            proc = subprocess.Popen([self._ray_exe(), "start"] + args, env=self._env(),
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            log.close()
        self._procs.append(proc)

    def start(self):
        """Start the nodes (head first) and wait until the head answers.

        Returns:
            self.

        Raises:
            ImportError: Ray is not installed.
            RuntimeError: a node did not start within ``timeout`` (its log is quoted).
        """
        _runtime.import_ray()
        self._token = secrets.token_hex(32)
        self._temp_dir = tempfile.mkdtemp(prefix="fundl_ray_", dir="/tmp")  # short socket paths
        self.port = self.port or _free_port()
        self.address = f"127.0.0.1:{self.port}"
        try:
            self._spawn(["--head", f"--port={self.port}", "--include-dashboard=False",
                         f"--temp-dir={self._temp_dir}"] + self._node_args())
            self._wait(lambda: self._status_ok(), "the head node")
            for _ in range(self.num_nodes - 1):
                self._spawn([f"--address={self.address}"] + self._node_args())
        except BaseException:
            self.stop()
            raise
        return self

    def _status_ok(self):
        result = subprocess.run([self._ray_exe(), "status", f"--address={self.address}"],
                                env=self._env(), capture_output=True, text=True, timeout=60)
        return result.returncode == 0

    def _wait(self, ready, what):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"LocalCluster: a `ray start` process exited while "
                                       f"waiting for {what}:\n{self._logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"LocalCluster: {what} did not come up within {self.timeout} s:\n"
                           f"{self._logs()}")

    def _logs(self):
        out = []
        for name in sorted(os.listdir(self._temp_dir or ".")):
            if name.endswith(".log"):
                with open(os.path.join(self._temp_dir, name)) as f:
                    out.append(f"--- {name}\n" + "".join(f.readlines()[-15:]))
        return "\n".join(out)

    def connect(self):
        """Join this process to the cluster (with its token) and wait for every node.

        Returns:
            self.
        """
        ray = _runtime.import_ray()
        if not self._connected:
            if ray.is_initialized():
                raise RuntimeError("LocalCluster.connect: this process is already connected to "
                                   "Ray; call ray.shutdown() (or leave the other session) "
                                   "first.")
            env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self._token,
                   "RAY_USAGE_STATS_ENABLED": "0"}
            try:
                with _runtime.temporary_env(env):
                    _runtime.refresh_ray_config()
                    ray.init(address=self.address, log_to_driver=False,
                             logging_level="WARNING")
            except BaseException:
                _runtime.refresh_ray_config()  # back to what the environment says
                raise
            # on success Ray keeps the mode and token it connected with (cached) until stop()
            self._connected = True
        self._wait(lambda: sum(n["Alive"] for n in ray.nodes()) >= self.num_nodes,
                   f"{self.num_nodes} nodes")
        return self

    def node_ids(self):
        """The Ray node ids of the live nodes."""
        ray = _runtime.import_ray()
        return [n["NodeID"] for n in ray.nodes() if n["Alive"]]

    def stop(self):
        """Disconnect this process and stop the nodes this object started (by process id)."""
        ray = _runtime.import_ray()
        if self._connected:
            ray.shutdown()
            self._connected = False
            _runtime.refresh_ray_config()
        for proc in reversed(self._procs):  # workers first, the head last
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs = []
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self):
        self.start()
        try:
            return self.connect()
        except BaseException:
            self.stop()  # __exit__ does not run when __enter__ fails
            raise

    def __exit__(self, *exc):
        self.stop()
        return False
