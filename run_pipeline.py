#!/usr/bin/env python
"""Command-line entry point: ``python run_pipeline.py {demo,synth,bench,...} ...``.

See ``python run_pipeline.py --help`` and README.md.
"""

import sys

from workflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
