"""The operator's cockpit over HTTP: the REST API under ``/api/v1`` and the dashboard at ``/ui``.

``bot.api.server.ApiServer`` is one more port over the daemon's Engine and store:
reads come from ``bot.store.read`` and the Engine's in-memory portfolio, control
actions go through ``bot.ops.control.Operator``, live updates through ``bot.api.stream``.
"""
