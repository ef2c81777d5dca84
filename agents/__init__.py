"""Reference dispatchers (HybridDis and the baselines), the dispatch ILP, bounds and episode runners.

Build a dispatcher by name with :func:`make_dispatcher`; :func:`list_dispatchers` gives the names.
"""

from agents.base import Dispatcher, check_assignment, list_dispatchers, make_dispatcher, plan_cost_s

__all__ = ["Dispatcher", "check_assignment", "list_dispatchers", "make_dispatcher", "plan_cost_s"]
