"""The realtime benchmark suite: `python -m bench` (full, a few minutes) or `python -m bench --smoke`.

One module per job: servers.py starts and stops daphne, setup_db.py prepares a database,
clients.py speaks the protocol, figures.py measures, report.py prints and saves.
See docs/performance.md.
"""
