"""`python -m workshop ...`"""

from workshop.cli import main

raise SystemExit(main())
