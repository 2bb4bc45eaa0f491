"""``python -m occam.arena [options]``: run one scoring worker (see occam.arena.worker).

Workers are started this way rather than ``python -m occam.arena.worker`` because multiprocessing
re-imports a ``-m`` main module in every sandboxed child it starts, unless that module is a
package's ``__main__`` (then it is skipped): this keeps each model's child start-up cheap.
"""

import sys

if __name__ == "__main__":
    from occam.arena.worker import main

    sys.exit(main())
