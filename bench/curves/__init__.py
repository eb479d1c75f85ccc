"""Cost curves: what a request, a start or a reload costs as the work grows (bench/README.md,
"Cost as work grows"). ``python -m bench.curves payload|routes|keys|soak``."""
