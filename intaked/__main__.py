"""``python -m intaked`` runs the command line."""

from intaked.cli import main

raise SystemExit(main())
