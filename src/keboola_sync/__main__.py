"""`python -m keboola_sync` = the `keboola-sync` command."""

from .cli import main

raise SystemExit(main())
