"""`python -m conformance check ...` / `python -m conformance statement --out DIR`."""

import sys

from conformance.cli import main

sys.exit(main())
