"""Functions to register from the command line, e.g.

    faas register demo/python/functions.py --entrypoint add
    faas invoke <function-id> '[2, 3]' --wait
"""

import time


def add(a, b):
    return a + b


def slow_square(x, seconds=1.0):
    time.sleep(seconds)
    return x * x
