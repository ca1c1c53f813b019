"""`python -m tandem ...` is the `tandem` command (torchrun starts ranks this way)."""

import sys

from tandem.cli import main

sys.exit(main())
