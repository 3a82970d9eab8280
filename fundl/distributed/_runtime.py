"""Starting, joining and leaving Ray, with its common pitfalls turned into clear messages.

Everything cluster-related is Ray's: processes, scheduling, the object store, restarts. This
module only decides *how* to call ``ray.init`` so that a laptop-sized run is quiet and small,
and explains the failures people meet first:

- ``address=None`` starts a private local Ray (``address="local"``: it never silently joins a
  cluster some other program started with ``ray start``), without the dashboard, without
  usage statistics, with a modest object store, and shuts it down again at the end;
- ``"auto"``, ``"host:port"`` and ``"ray://host:port"`` join a running cluster and leave it
  running;
- Ray 2.60 turns on token authentication for new clusters; a driver that joins a cluster by
  an explicit address does not enable it on its own, which fails with an authentication
  error. The message says what to set (``RAY_AUTH_MODE=token`` and the token).

Environment variables that ``ray.init`` reads are set only around the call and restored
afterwards (Ray itself writes ``RAY_AUTH_MODE`` into ``os.environ``; that is undone too), so
importing or using :mod:`fundl.distributed` leaves the user's process environment as it was.
"""
from __future__ import annotations

import contextlib
import logging
import os

# The object store of a local Ray started by fundl: enough for MNIST-sized data sets and
# weights many times over, small next to 24 GiB of memory (Ray's default is 30 % of RAM).
LOCAL_OBJECT_STORE_BYTES = 512 * 1024 ** 2

_INSTALL = "pip install 'fundl[distributed]'"


def import_ray():
    """Import Ray, or raise an ImportError that says how to install it.

    Returns:
        The ``ray`` module.

    Raises:
        ImportError: Ray is not installed (the message names ``pip install 'fundl[distributed]'``).
    """
    try:
        import ray
    except ImportError as e:
        raise ImportError("fundl.distributed trains on Ray, which is not installed: "
                          f"{_INSTALL}") from e
    return ray


@contextlib.contextmanager
def temporary_env(values):
    """Set environment variables for the duration of a ``with`` block, then restore them.

    Args:
        values: ``{name: value}``; ``None`` leaves a variable as it is.

    Variables in ``values`` and ``RAY_AUTH_MODE`` (which ``ray.init`` writes itself) get their
    old values back (or are removed again) when the block ends.
    """
    names = set(values) | {"RAY_AUTH_MODE"}
    old = {name: os.environ.get(name) for name in names}
    try:
        for name, value in values.items():
            if value is not None:
                os.environ[name] = str(value)
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_address(address):
    if address is None:
        return
    if not isinstance(address, str) or not address:
        raise TypeError(f"fundl.distributed: address must be None (a local Ray), 'auto', "
                        f"'host:port' or 'ray://host:port', got {address!r}.")


def connect(address=None, num_cpus=None, object_store_memory=None, log_to_driver=False):
    """Make sure this process is connected to Ray; start a local Ray if needed.

    Args:
        address: None starts a private local Ray; ``"auto"`` joins the cluster ``ray start``
            started on this machine; ``"host:port"`` or ``"ray://host:port"`` joins that one.
            Ignored when Ray is already initialised in this process (that session is used).
        num_cpus: CPUs of a local Ray (default: the machine's).
        object_store_memory: bytes of a local Ray's object store (default 512 MiB).
        log_to_driver: show the workers' stdout and stderr here.

    Returns:
        True when this call started (or joined) Ray, so the caller should call
        :func:`disconnect` when done; False when Ray was already initialised.

    Raises:
        ImportError: Ray is not installed.
        ConnectionError: no cluster at ``address`` (with what to start).
        PermissionError: the cluster wants an authentication token this process lacks.

    Example:
        >>> started = connect()          # a quiet local Ray
        >>> disconnect(started)
    """
    _check_address(address)
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=log_to_driver,
                  logging_level=logging.WARNING)
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    if address is None:
        kwargs.update(address="local", num_cpus=num_cpus or os.cpu_count(),
                      object_store_memory=object_store_memory or LOCAL_OBJECT_STORE_BYTES)
        # A new local cluster gets Ray's default, token authentication; naming the mode
        # explicitly only silences the warning Ray prints when it picks the default.
        if "RAY_AUTH_MODE" not in os.environ:
            env["RAY_AUTH_MODE"] = "token"
    else:
        kwargs.pop("include_dashboard")  # a setting of the cluster, not of a driver joining it
        kwargs["address"] = address
    try:
        with temporary_env(env):
            refresh_ray_config()  # Ray caches RAY_AUTH_MODE when it is imported
            ray.init(**kwargs)
    except Exception as e:  # noqa: BLE001 - rewritten with what to do, or re-raised
        refresh_ray_config()
        if _is_auth_error(e):
            raise PermissionError(
                f"fundl.distributed: the Ray cluster at {address!r} uses token authentication "
                "(the default of `ray start --head` in Ray 2.60 when ~/.ray/auth_token exists), "
                "but this process did not send the right token. Set RAY_AUTH_MODE=token in the "
                "environment and make the cluster's token available (the same "
                "~/.ray/auth_token file, RAY_AUTH_TOKEN_PATH=file, or RAY_AUTH_TOKEN=token); or "
                "start every node and this driver with the same RAY_AUTH_MODE. Ray said: "
                f"{_root_message(e)}") from e
        if not isinstance(e, ConnectionError):
            raise
        if address == "auto":
            raise ConnectionError(
                "fundl.distributed: address='auto' found no running Ray cluster on this "
                "machine. Start one with `ray start --head` (and `ray start "
                "--address=HEAD_IP:6379` on the other machines), or pass address=None for a "
                f"local Ray that fundl starts and stops itself. Ray said: {e}") from e
        raise ConnectionError(
            f"fundl.distributed: could not reach a Ray cluster at {address!r}. Is it running "
            "(`ray status --address=...`), and is the port right (the head's --port, 6379 by "
            f"default; ray://... uses the client port, 10001)? Ray said: {e}") from e
    return True


def _chain(e):
    seen = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def _is_auth_error(e):
    """Whether ``e`` or an exception it came from is Ray's token-authentication failure."""
    ray = import_ray()
    auth_error = getattr(ray.exceptions, "AuthenticationError", None)
    for err in _chain(e):
        if auth_error is not None and isinstance(err, auth_error):
            return True
        text = str(err).lower()
        if "authentication" in text and "token" in text:
            return True
    return False


def _root_message(e):
    return str(_chain(e)[-1]).splitlines()[0] if str(_chain(e)[-1]) else repr(e)


def refresh_ray_config():
    """Make Ray re-read its settings from the environment (``RAY_AUTH_MODE`` above all).

    Ray reads them once, when it is imported, and re-reads them the same way itself when it
    switches token authentication on (and drops its cached token when it makes a new one);
    fundl does so around ``ray.init`` and after restoring the environment, so that a
    temporary setting really is temporary.
    """
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without these hooks: it reads the environment at init
        return
    Config.initialize("")
    # The token is cached too, once read (from ~/.ray/auth_token, RAY_AUTH_TOKEN, ...):
    # a second cluster with another token needs it read afresh.
    AuthenticationTokenLoader.instance().reset_cache()


def disconnect(started):
    """Shut Ray down if :func:`connect` started it (``started`` is its return value)."""
    if started:
        ray = import_ray()
        if ray.is_initialized():
            ray.shutdown()
        refresh_ray_config()


def actor_options(resources_per_worker, who):
    """Ray actor options from ``resources_per_worker`` (``{"CPU": 1, "GPU": 0.5, "x": 1}``).

    Raises:
        TypeError / ValueError: not a dict of non-negative numbers.
    """
    if resources_per_worker is None:
        return {}
    if not isinstance(resources_per_worker, dict):
        raise TypeError(f"{who}: resources_per_worker must be a dict like {{'CPU': 1}}, got "
                        f"{type(resources_per_worker).__name__}.")
    options, custom = {}, {}
    for name, amount in resources_per_worker.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"{who}: resources_per_worker[{name!r}] must be a number >= 0, "
                             f"got {amount!r}.")
        if name == "CPU":
            options["num_cpus"] = amount
        elif name == "GPU":
            options["num_gpus"] = amount
        elif name == "memory":
            options["memory"] = amount
        else:
            custom[str(name)] = amount
    if custom:
        options["resources"] = custom
    return options
