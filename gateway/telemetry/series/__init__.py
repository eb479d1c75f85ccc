"""Live series: each replica's requests, errors and latency per model × version in fixed
steps (``recorder``), published to the store every step and merged over the live replicas
(``fleet``) into the arrays ``GET /admin/series`` answers (``view``); the latency buckets
they share are in ``histogram``."""
