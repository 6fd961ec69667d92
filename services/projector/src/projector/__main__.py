"""``python -m projector`` runs the service; ``replay`` and ``check`` are the operator CLI."""

import sys

from projector.bootstrap import main, main_cli

if len(sys.argv) > 1:
    main_cli(sys.argv[1:])
else:
    main()
