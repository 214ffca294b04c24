"""The demo company: an invented contractor with users of every role, customers and sites across
China's seven regions, suppliers and ~300 orders with ten months of history. Loaded by `eoms demo`."""

from .data import PASSWORDS, USERS
from .loader import DemoSummary, build_plan, database_status, load_demo

__all__ = ["PASSWORDS", "USERS", "DemoSummary", "build_plan", "database_status", "load_demo"]
