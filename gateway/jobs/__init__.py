"""Durable async jobs: an inference request accepted now (202) and replayed later, through
the route table live at run time, by the job workers of every gateway process."""
