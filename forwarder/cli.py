"""Entry point: ``python -m forwarder run ...`` and ``python -m forwarder replay FILE...``.

Exit codes: 0 clean stop / replay fully acknowledged; 1 replay incomplete or a runtime
failure; 2 a bad option (one line on stderr naming it). Errors raised by the pipeline may
carry their own ``exit_code`` (e.g. missing AWS access).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType

from .config import ConfigError, ReplayConfig, RunConfig, parse
from .jsonlog import setup_logging
from .metrics import Health, Metrics, MetricsServer, liveness_window_seconds, serve

log = logging.getLogger("forwarder.cli")

EXIT_CONFIG = 2


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop``; a second signal ends the process at once."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second signal; exiting without waiting", extra={"signal": signal.Signals(signum).name})
            os._exit(128 + signum)
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def _config_error(error: ConfigError) -> int:
    print(f"forwarder: error: {error}", file=sys.stderr, flush=True)
    return EXIT_CONFIG


def _run(config: RunConfig, stop: threading.Event) -> int:
    metrics = Metrics()
    health = Health(liveness_window_seconds(config.request_timeout_seconds))
    server: MetricsServer | None = None
    if config.metrics_port:
        try:
            server = serve(config.metrics_port, metrics, health)
        except OSError as exc:
            return _config_error(ConfigError("--metrics-port", f"cannot listen on {config.metrics_port}: {exc}"))
    try:
        # Imported here so the rest of the CLI works without the AWS side loaded.
        from . import pipeline

        return int(pipeline.run(config, metrics=metrics, health=health, stop=stop))
    except ConfigError as exc:
        return _config_error(exc)
    except Exception as exc:  # noqa: BLE001 (last resort: log it as JSON, exit non-zero)
        code = getattr(exc, "exit_code", 1)
        log.exception("forwarder failed", extra={"error": str(exc)})
        return code if isinstance(code, int) and code != 0 else 1
    finally:
        if server is not None:
            server.shutdown()


def _replay(config: ReplayConfig, stop: threading.Event) -> int:
    from . import replay

    try:
        return replay.run(config, stop)
    except ConfigError as exc:
        return _config_error(exc)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    try:
        config = parse(args, env)
    except ConfigError as exc:
        return _config_error(exc)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    stop = threading.Event()
    install_stop_handlers(stop)
    if isinstance(config, RunConfig):
        setup_logging(config.log_level)
        log.info("starting", extra={"log_group": config.log_group, "falco_url": config.falco_url})
        return _run(config, stop)
    # replay: stdout carries only the one-line summary, so logs go to stderr.
    setup_logging(config.log_level, sys.stderr)
    return _replay(config, stop)
