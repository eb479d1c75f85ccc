"""Gateway-side batching: calls for one model version joined along dimension 0, sent as one
call, the reply split back by rows (``policies.batch`` is the chain's step)."""
