"""The admin API's routes: config, models, tenants, keys, rollouts, shadow traffic, jobs, batch
files, webhooks, usage, live series.
Adding a part is one module with a class that has ``routes()``, and one line here."""

from __future__ import annotations

from gateway.admin.access import AdminAccess
from gateway.admin.batches import BatchesAPI
from gateway.admin.config import ConfigAPI
from gateway.admin.config_check import ConfigCheckAPI
from gateway.admin.jobs import JobsAPI
from gateway.admin.keys import KeysAPI
from gateway.admin.models import ModelsAPI
from gateway.admin.rollouts import RolloutsAPI
from gateway.admin.series import SeriesAPI
from gateway.admin.shadow import ShadowAPI
from gateway.admin.tenants import TenantsAPI
from gateway.admin.usage import UsageAPI
from gateway.admin.webhooks import WebhooksAPI
from gateway.edge.http import Route
from gateway.state import State


def admin_routes(state: State) -> list[Route]:
    access = AdminAccess(state)
    tenants = TenantsAPI(state, access)
    return [
        *ConfigAPI(state, access).routes(),
        *ConfigCheckAPI(state, access).routes(),
        *ModelsAPI(state, access).routes(),
        *tenants.routes(),
        *KeysAPI(state, access, tenants).routes(),
        *RolloutsAPI(state, access).routes(),
        *ShadowAPI(state, access).routes(),
        *JobsAPI(state, access).routes(),
        *WebhooksAPI(state, access, tenants).routes(),
        *BatchesAPI(state, access).routes(),
        *SeriesAPI(state, access).routes(),
        *UsageAPI(state, access).routes(),
    ]
