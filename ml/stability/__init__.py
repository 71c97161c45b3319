"""Thermodynamic stability: convex hulls of formation energy and hull distances (pure numpy/scipy).

``hull``: one chemical system (build its lower hull, evaluate any points against it);
``systems``: every chemical system of a data set at once (one hull per maximal system, shared
by its subsystems); ``metrics``: discovery metrics of predicted hull distances.
"""
