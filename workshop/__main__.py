"""`python -m workshop ...`"""

from .cli import main

raise SystemExit(main())
