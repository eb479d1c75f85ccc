"""The servers ``python -m bench.servers`` measures under one forwarding app (bench/README.md,
"The server under the app"). ``upstream``, ``asgi`` and ``rsgi`` import only the standard
library and aiohttp: granian runs them from its own venv."""
