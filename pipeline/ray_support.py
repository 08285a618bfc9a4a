"""Starting Ray once per process, for the parts of the pipeline that run on it."""

from __future__ import annotations


def ensure_ray(address: str | None, num_cpus: int, purpose: str):
    """The ``ray`` module, initialised: joins ``address`` ("auto", "host:port") when given,
    else starts Ray on this machine with ``num_cpus``. An already running Ray is reused."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"{purpose} needs the ray extra (pip install -e '.[ray]'): {error}") from error
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=int(num_cpus), include_dashboard=False, log_to_driver=False)
    return ray
