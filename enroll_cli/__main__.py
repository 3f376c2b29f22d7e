"""``python -m enroll_cli`` runs the ``enroll`` command."""

import sys

from enroll_cli.main import main

sys.exit(main())
