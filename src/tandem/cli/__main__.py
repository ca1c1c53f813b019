"""`python -m tandem.cli ...` is the `tandem` command."""

import sys

from tandem.cli import main

sys.exit(main())
