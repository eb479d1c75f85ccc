"""The admin API: every part of it, each a class whose ``routes()`` it serves (see ``api``)."""
