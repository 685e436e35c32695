"""The quality portal (`hqlake serve`): a served web application on the published snapshot.

One process, and never the warehouse: the portal reads the snapshot the pipeline publishes
(`expectations/publish/snapshot.py`), writes actions as files for `hqlake apply`
(`infra/actions.py`), and keeps its own state (accounts, sessions, login attempts, audit) in
SQLite under `Settings.portal_dir` (`store.py`). `app.py` builds the Starlette application,
`access.py` is the access policy every page goes through, `auth.py` the passwords, sessions
and throttle, `pages.py` the page routes (portal-pages).
"""
