"""Functions the tests send by reference: the platform's Python children import this module
(the test stack puts this directory on their PYTHONPATH)."""

import enum
import time


class Level(enum.IntEnum):
    """An int subclass: its pickle is not a plain int's."""

    HIGH = 3


def square(x):
    return x * x


def nap(seconds, value=None):
    time.sleep(seconds)
    return seconds if value is None else value


def echo(*args, **kwargs):
    return args, kwargs


def noop():
    return None


class Oops(Exception):
    pass


def fail(message):
    raise Oops(message)
