"""The ``enroll`` command-line tool: the local stack (``enroll local``, ``enroll demo``) and the
query API's client (``enroll users``, ``status``, ``photos``, ``search``, ``verify``, ``delete``)
for a local or a deployed stack. Entry point: ``enroll_cli.main:main``.
"""
