"""``python -m forwarder``."""

from .cli import main

raise SystemExit(main())
