"""The web console at ``/console``: static pages whose scripts drive the admin API with a
session cookie (``routes``, ``session``, ``security``, ``static``)."""
