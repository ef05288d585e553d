"""``python -m azml_client`` runs the ``azml`` command line."""

from azml_client.cli import main

raise SystemExit(main())
