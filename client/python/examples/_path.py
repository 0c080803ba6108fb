"""Lets the examples run from a source checkout: puts client/python on
sys.path (the generated stubs must be on PYTHONPATH; see ../README.md)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
