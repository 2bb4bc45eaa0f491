"""The Arena: a self-hosted contest server's non-web logic.

- :mod:`occam.arena.schema`: the SQLAlchemy schema (challenges, teams, submissions, settings).
- :mod:`occam.arena.db`: engines (SQLite in WAL mode or PostgreSQL), sessions and migrations.
- :mod:`occam.arena.challenges`: challenge TOML files and the seeded public/private split.
- :mod:`occam.arena.service`: accepting submissions (the guard, quotas) and admin actions.
- :mod:`occam.arena.queue`: the submissions table as a job queue (leases, heartbeats, sweeper).
- :mod:`occam.arena.worker`: the scoring worker (one fresh sandboxed child per model).
- :mod:`occam.arena.leaderboard`: public/private leaderboards, the Pareto view and CSV export.

Nothing here imports FastAPI; the web layer lives in :mod:`occam.web`.
"""
