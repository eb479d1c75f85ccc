"""The policy registry: routes.yaml names → policy classes (see ``gateway.chain.Policy``).

Adding a policy is one module in this package and one line here. The chain runs them in this
order, mirrored on the way back.
"""

from gateway.chain import Policy
from policies.auth import AuthPolicy
from policies.cache import CachePolicy
from policies.rate_limit import RateLimitPolicy
from policies.traffic import TrafficPolicy

POLICIES: dict[str, type[Policy]] = {
    "auth": AuthPolicy,
    "traffic": TrafficPolicy,
    "rate_limit": RateLimitPolicy,
    "cache": CachePolicy,
}
