"""library: a lending library built on cqrskit's public API.

Members borrow copies of catalogued titles and bring them back; loans have due dates,
can be renewed, and late ones show up in the overdue report. The folders are the
layers: ``domain`` (aggregates, events, rules), ``application`` (commands, queries and
their handlers), ``projections`` (read models), and the entrypoint ``api`` with its
composition root ``bootstrap`` and ``settings``.
"""
