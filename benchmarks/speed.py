"""Speed benchmark: the same as `tandem bench` (see src/tandem/bench.py).

    .venv/bin/python benchmarks/speed.py [--sizes small base] [--quick]
"""

import sys

from tandem.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
