"""Guard against a PySide6 build that corrupts reference counts (6.12.0 on Python 3.11)."""

import sys

from PySide6.QtCore import QObject


def test_calls_returning_nothing_keep_none_alive():
    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        obj.setObjectName("x")
    # A few references may come and go elsewhere; the broken build loses exactly 1000.
    assert abs(sys.getrefcount(None) - before) < 50
