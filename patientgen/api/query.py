"""Query strings hold only the parameters their route declares.

FastAPI ignores a query parameter no route declares, so `GET /jobs/{id}/patients?trige=T1` (a
typo of `triage`) answered every casualty, unfiltered, with 200: a wrong answer that looks right.
`known_parameters` is a dependency of every API route: a parameter the route does not take is a
422 problem+json naming each such parameter and the ones the route takes (an error of type
`extra_forbidden`, as pydantic names an unknown field of a body). It runs before the route's own
parameters are read, so such a request is answered with these errors alone.

The names a route takes are read once per route from its dependant (its own query parameters and
those of its dependencies, by alias), never written by hand.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

#: route.unique_id (its operation id: method and path) -> the query parameters it takes
_DECLARED: dict[str, frozenset[str]] = {}


def _declared(route: APIRoute) -> frozenset[str]:
    found = _DECLARED.get(route.unique_id)
    if found is None:
        found = _DECLARED[route.unique_id] = frozenset(_aliases(route.dependant))
    return found


def _aliases(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _aliases(sub)
    return names


async def known_parameters(request: Request) -> None:
    """Refuse the request when its query string names a parameter its route does not take."""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _declared(route)
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in declared]
    if unknown:
        takes = ", ".join(sorted(declared)) if declared else "none"
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"unknown query parameter {name!r} (this endpoint takes: {takes})",
                    "input": request.query_params.get(name),
                }
                for name in unknown
            ]
        )
