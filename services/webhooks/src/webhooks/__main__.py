"""``python -m webhooks`` runs the service."""

from webhooks.bootstrap import main

main()
