"""The backends: one adapter per server kind (``registry.ADAPTERS``), its routes.yaml spec
(``specs.SPECS``), and the pools, clients and health checks under them."""
