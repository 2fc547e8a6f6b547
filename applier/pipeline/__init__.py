"""The data path, one stage per module, in the order data flows:

source -> intake (+ writeset) -> dispatcher (+ scheduler) -> pool -> worker -> planner
(+ compaction, tables) -> session (commit with checkpoint); serial for what runs alone.
``coordinator`` wires them; ``messages`` are the values that cross processes.
"""
